"""Implementations of the ports: local directory and Azure Blob stores, local-process and
Kubernetes compute, and the Azure plumbing (credentials, kubeconfig) they need."""
