"""Azure plumbing: the one credential (`DefaultAzureCredential`) and the AKS kubeconfig from ARM.

Azure SDKs are imported lazily inside functions, so importing this package costs nothing.
"""
