"""`aksrun admin`: provision and remove what aksrun needs on Azure, idempotently.

One module per thing touched, each importing its SDK inside functions so `import aksrun`
stays light:

- `steps`: the found / created / changed / removed record every command prints;
- `context`: the target (subscription, resource group, cluster) and its lazily made clients;
- `arm`: ARM calls with errors turned into aksrun's typed ones;
- `cluster`, `storage`, `registry`, `identity`, `roles`, `principals`: the Azure resources;
- `kube_access`, `kube_objects`: the cluster's admin client and the per-user objects;
- `probe`: waiting until a new identity can really reach its container;
- `bootstrap`, `users`, `teardown`: the commands, composed from the above.
"""
