"""`aksrun gc`: remove what finished jobs left behind (store objects, Kubernetes Jobs) and the
function objects no remaining job references."""
