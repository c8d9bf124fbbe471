"""Request-body checks and API defaulting, so the fake rejects what a real apiserver would.

SCHEMA lists the wire field names of the types a Job or Pod body can contain; it was
generated from the official client's 1.37 models (attribute_map) so no field is invented.
Types not listed (probes, lifecycle, ...) are accepted without a field check.
"""

from __future__ import annotations

import copy

from .objects import LABEL_VALUE, RFC1123_LABEL, RFC1123_SUBDOMAIN, ApiError, parse_quantity

SCHEMA: dict[str, str] = {
    "Job": "apiVersion kind metadata:ObjectMeta spec:JobSpec status",
    "ObjectMeta": (
        "annotations creationTimestamp deletionGracePeriodSeconds deletionTimestamp finalizers "
        "generateName generation labels managedFields name namespace "
        "ownerReferences:OwnerReference resourceVersion selfLink uid"
    ),
    "OwnerReference": "apiVersion blockOwnerDeletion controller kind name uid",
    "JobSpec": (
        "activeDeadlineSeconds backoffLimit backoffLimitPerIndex completionMode completions "
        "managedBy manualSelector maxFailedIndexes parallelism podFailurePolicy:PodFailurePolicy "
        "podReplacementPolicy scheduling selector:LabelSelector successPolicy:SuccessPolicy "
        "suspend template:PodTemplateSpec ttlSecondsAfterFinished"
    ),
    "PodFailurePolicy": "rules:PodFailurePolicyRule",
    "PodFailurePolicyRule": (
        "action onExitCodes:PodFailurePolicyOnExitCodesRequirement "
        "onPodConditions:PodFailurePolicyOnPodConditionsPattern"
    ),
    "PodFailurePolicyOnExitCodesRequirement": "containerName operator values",
    "PodFailurePolicyOnPodConditionsPattern": "status type",
    "SuccessPolicy": "rules:SuccessPolicyRule",
    "SuccessPolicyRule": "succeededCount succeededIndexes",
    "LabelSelector": "matchExpressions:LabelSelectorRequirement matchLabels",
    "LabelSelectorRequirement": "key operator values",
    "PodTemplateSpec": "metadata:ObjectMeta spec:PodSpec",
    "PodSpec": (
        "activeDeadlineSeconds affinity:Affinity automountServiceAccountToken "
        "containers:Container dnsConfig dnsPolicy enableServiceLinks ephemeralContainers "
        "evictionResponders hostAliases hostIPC hostNetwork hostPID hostUsers hostname "
        "hostnameOverride imagePullSecrets:LocalObjectReference initContainers:Container nodeName "
        "nodeSelector os overhead preemptionPolicy priority priorityClassName readinessGates "
        "resourceClaims resources:ResourceRequirements restartPolicy runtimeClassName "
        "schedulerName schedulingGates schedulingGroup securityContext:PodSecurityContext "
        "serviceAccount serviceAccountName setHostnameAsFQDN shareProcessNamespace subdomain "
        "terminationGracePeriodSeconds tolerations:Toleration topologySpreadConstraints "
        "volumes:Volume"
    ),
    "Container": (
        "args command env:EnvVar envFrom image imagePullPolicy lifecycle livenessProbe name ports "
        "readinessProbe resizePolicy resources:ResourceRequirements restartPolicy "
        "restartPolicyRules securityContext:SecurityContext startupProbe stdin stdinOnce "
        "terminationMessagePath terminationMessagePolicy tty volumeDevices "
        "volumeMounts:VolumeMount workingDir"
    ),
    "EnvVar": "name value valueFrom:EnvVarSource",
    "EnvVarSource": (
        "configMapKeyRef fieldRef:ObjectFieldSelector fileKeyRef "
        "resourceFieldRef:ResourceFieldSelector secretKeyRef"
    ),
    "ObjectFieldSelector": "apiVersion fieldPath",
    "ResourceFieldSelector": "containerName divisor resource",
    "ResourceRequirements": "claims limits requests",
    "VolumeMount": (
        "bindMountOptions mountPath mountPropagation name readOnly recursiveReadOnly subPath "
        "subPathExpr"
    ),
    "Volume": (
        "awsElasticBlockStore azureDisk azureFile cephfs cinder configMap csi downwardAPI "
        "emptyDir:EmptyDirVolumeSource ephemeral fc flexVolume flocker gcePersistentDisk gitRepo "
        "glusterfs hostPath:HostPathVolumeSource image iscsi name nfs persistentVolumeClaim "
        "photonPersistentDisk portworxVolume projected quobyte rbd scaleIO secret storageos "
        "vsphereVolume"
    ),
    "EmptyDirVolumeSource": "medium mode sizeLimit",
    "HostPathVolumeSource": "path type",
    "Toleration": "effect key operator tolerationSeconds value",
    "Affinity": "nodeAffinity:NodeAffinity podAffinity podAntiAffinity",
    "NodeAffinity": (
        "preferredDuringSchedulingIgnoredDuringExecution "
        "requiredDuringSchedulingIgnoredDuringExecution:NodeSelector"
    ),
    "NodeSelector": "nodeSelectorTerms:NodeSelectorTerm",
    "NodeSelectorTerm": (
        "matchExpressions:NodeSelectorRequirement matchFields:NodeSelectorRequirement"
    ),
    "NodeSelectorRequirement": "key operator values",
    "SecurityContext": (
        "allowPrivilegeEscalation appArmorProfile capabilities:Capabilities privileged procMount "
        "readOnlyRootFilesystem runAsGroup runAsNonRoot runAsUser seLinuxOptions "
        "seccompProfile:SeccompProfile windowsOptions"
    ),
    "PodSecurityContext": (
        "appArmorProfile fsGroup fsGroupChangePolicy runAsGroup runAsNonRoot runAsUser "
        "seLinuxChangePolicy seLinuxOptions seccompProfile:SeccompProfile supplementalGroups "
        "supplementalGroupsPolicy sysctls windowsOptions"
    ),
    "Capabilities": "add drop",
    "SeccompProfile": "localhostProfile type",
    "LocalObjectReference": "name",
    "Pod": "apiVersion kind metadata:ObjectMeta spec:PodSpec status",
    "DeleteOptions": (
        "apiVersion dryRun gracePeriodSeconds ignoreStoreReadErrorWithClusterBreakingPotential "
        "kind orphanDependents preconditions:Preconditions propagationPolicy"
    ),
    "Preconditions": "resourceVersion uid",
    "Namespace": "apiVersion kind metadata:ObjectMeta spec status",
    "ServiceAccount": (
        "apiVersion automountServiceAccountToken imagePullSecrets:LocalObjectReference kind "
        "metadata:ObjectMeta secrets"
    ),
    "Eviction": "apiVersion deleteOptions:DeleteOptions kind metadata:ObjectMeta",
}

FIELD_PATHS = (
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
    "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
    "status.podIPs",
)
RESOURCE_FIELDS = ("limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu",
                   "requests.memory", "requests.ephemeral-storage")
INT_FIELDS = ("activeDeadlineSeconds", "backoffLimit", "backoffLimitPerIndex", "completions",
              "maxFailedIndexes", "parallelism", "ttlSecondsAfterFinished")
MAX_INT32 = 2147483647


def unknown_fields(obj: object, type_name: str, path: str = "") -> list[str]:
    """Dotted paths of fields the type does not have (strict decoding)."""
    spec = SCHEMA.get(type_name)
    if spec is None or not isinstance(obj, dict):
        return []
    known = dict([*f.split(":"), ""][:2] for f in spec.split())
    out: list[str] = []
    for key, value in obj.items():
        here = f"{path}.{key}" if path else key
        if key not in known:
            out.append(here)
        elif known[key]:
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                sub = f"{here}[{i}]" if isinstance(value, list) else here
                out.extend(unknown_fields(item, known[key], sub))
    return out


def check_unknown(obj: dict, type_name: str) -> None:
    bad = unknown_fields(obj, type_name)
    if bad:
        msg = ", ".join(f'unknown field "{p}"' for p in bad)
        raise ApiError(400, "BadRequest", f"strict decoding error: {msg}")


class Errors:
    """Collects field errors and raises one 422 Invalid like the apiserver does."""

    def __init__(self) -> None:
        self.causes: list[dict] = []

    def add(self, field: str, kind: str, detail: str = "", value: object = None) -> None:
        text = {"FieldValueRequired": "Required value", "FieldValueForbidden": "Forbidden",
                "FieldValueDuplicate": "Duplicate value", "FieldValueNotFound": "Not found",
                "FieldValueNotSupported": "Unsupported value",
                "FieldValueInvalid": "Invalid value"}[kind]
        if value is not None:
            text += f": {value!r}".replace("'", '"')
        if detail:
            text += f": {detail}"
        self.causes.append({"reason": kind, "message": text, "field": field})

    def raise_if_any(self, kind: str, group: str, name: str) -> None:
        if not self.causes:
            return
        items = [f"{c['field']}: {c['message']}" for c in self.causes]
        body = items[0] if len(items) == 1 else "[" + ", ".join(items) + "]"
        qualified = f"{kind}.{group}" if group else kind
        raise ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {body}',
                       {"name": name, "group": group, "kind": kind, "causes": self.causes})


def _labels(errs: Errors, labels: object, path: str) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict):
        errs.add(path, "FieldValueInvalid", "must be a map", labels)
        return
    for value in labels.values():
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            errs.add(path, "FieldValueInvalid", "a valid label must be 63 characters or less, "
                     "beginning and ending with an alphanumeric character", value)


def validate_meta(errs: Errors, meta: dict, label_name: bool = False) -> None:
    name = meta.get("name")
    if not name and not meta.get("generateName"):
        errs.add("metadata.name", "FieldValueRequired", "name or generateName is required")
    elif name and (not RFC1123_SUBDOMAIN.match(name) or len(name) > 253):
        errs.add("metadata.name", "FieldValueInvalid",
                 "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character",
                 name)
    elif name and label_name and len(name) > 63:
        errs.add("metadata.name", "FieldValueInvalid", "must be no more than 63 characters", name)
    _labels(errs, meta.get("labels"), "metadata.labels")


def _quantities(errs: Errors, res: dict, path: str) -> None:
    parsed: dict[str, dict[str, float]] = {}
    for kind in ("requests", "limits"):
        for name, value in (res.get(kind) or {}).items():
            try:
                parsed.setdefault(kind, {})[name] = parse_quantity(value)
            except ValueError as exc:
                errs.add(f"{path}.{kind}[{name}]", "FieldValueInvalid", str(exc), value)
    for name, req in parsed.get("requests", {}).items():
        lim = parsed.get("limits", {}).get(name)
        if lim is not None and req > lim:
            errs.add(f"{path}.requests", "FieldValueInvalid",
                     f"must be less than or equal to {name} limit of {res['limits'][name]}",
                     res["requests"][name])


def validate_pod_spec(errs: Errors, spec: dict, path: str, job: bool) -> None:
    containers = spec.get("containers") or []
    if not containers:
        errs.add(f"{path}.containers", "FieldValueRequired")
    if len(containers) > 1 or spec.get("initContainers") or spec.get("ephemeralContainers"):
        errs.add(f"{path}.containers", "FieldValueForbidden",
                 "the fake apiserver runs exactly one container per pod")
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    if len(volumes) != len(spec.get("volumes") or []):
        errs.add(f"{path}.volumes", "FieldValueDuplicate")
    for i, c in enumerate(containers):
        cp = f"{path}.containers[{i}]"
        if not c.get("name"):
            errs.add(f"{cp}.name", "FieldValueRequired")
        elif not RFC1123_LABEL.match(c["name"]) or len(c["name"]) > 63:
            errs.add(f"{cp}.name", "FieldValueInvalid", "a lowercase RFC 1123 label", c["name"])
        if not c.get("image"):
            errs.add(f"{cp}.image", "FieldValueRequired")
        for j, env in enumerate(c.get("env") or []):
            ep = f"{cp}.env[{j}]"
            if not env.get("name"):
                errs.add(f"{ep}.name", "FieldValueRequired")
            src = env.get("valueFrom") or {}
            if src and env.get("value"):
                errs.add(f"{ep}.valueFrom", "FieldValueInvalid",
                         "may not be specified when `value` is not empty", "")
            fpath = (src.get("fieldRef") or {}).get("fieldPath")
            if fpath is not None and fpath not in FIELD_PATHS and not (
                    fpath.startswith(("metadata.labels['", "metadata.annotations['"))
                    and fpath.endswith("']")):
                errs.add(f"{ep}.valueFrom.fieldRef.fieldPath", "FieldValueNotSupported",
                         "supported values: " + ", ".join(f'"{p}"' for p in FIELD_PATHS), fpath)
            rpath = (src.get("resourceFieldRef") or {}).get("resource")
            if rpath is not None and rpath not in RESOURCE_FIELDS:
                errs.add(f"{ep}.valueFrom.resourceFieldRef.resource", "FieldValueNotSupported",
                         "", rpath)
        for j, mount in enumerate(c.get("volumeMounts") or []):
            if not mount.get("mountPath"):
                errs.add(f"{cp}.volumeMounts[{j}].mountPath", "FieldValueRequired")
            if mount.get("name") not in volumes:
                errs.add(f"{cp}.volumeMounts[{j}].name", "FieldValueNotFound", "",
                         mount.get("name"))
        _quantities(errs, c.get("resources") or {}, f"{cp}.resources")
        policy = c.get("terminationMessagePolicy")
        if policy not in (None, "File", "FallbackToLogsOnError"):
            errs.add(f"{cp}.terminationMessagePolicy", "FieldValueNotSupported", "", policy)
    restart = spec.get("restartPolicy", "Always")
    allowed = ("OnFailure", "Never") if job else ("Always", "OnFailure", "Never")
    if restart not in allowed:
        errs.add(f"{path}.restartPolicy", "FieldValueNotSupported",
                 "supported values: " + ", ".join(f'"{a}"' for a in allowed), restart)
    for i, tol in enumerate(spec.get("tolerations") or []):
        if tol.get("operator", "Equal") not in ("Equal", "Exists"):
            errs.add(f"{path}.tolerations[{i}].operator", "FieldValueNotSupported", "",
                     tol.get("operator"))
        if tol.get("effect", "") not in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            errs.add(f"{path}.tolerations[{i}].effect", "FieldValueNotSupported", "",
                     tol.get("effect"))
    terms = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
             .get("nodeSelectorTerms") or [])
    ops = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
    for term in terms:
        for req in term.get("matchExpressions") or []:
            if req.get("operator") not in ops:
                errs.add(f"{path}.affinity.nodeAffinity", "FieldValueNotSupported", "",
                         req.get("operator"))


def _validate_failure_policy(errs: Errors, spec: dict, names: set[str]) -> None:
    pfp = spec.get("podFailurePolicy")
    if pfp is None:
        return
    path = "spec.podFailurePolicy"
    restart = spec["template"].get("spec", {}).get("restartPolicy")
    if restart != "Never":
        errs.add("spec.template.spec.restartPolicy", "FieldValueInvalid",
                 'only "Never" is supported when podFailurePolicy is specified', restart)
    actions = ("Count", "FailIndex", "FailJob", "Ignore")
    for i, rule in enumerate(pfp.get("rules") or []):
        rp = f"{path}.rules[{i}]"
        action = rule.get("action")
        if action not in actions:
            errs.add(f"{rp}.action", "FieldValueNotSupported",
                     "supported values: " + ", ".join(f'"{a}"' for a in actions), action)
        if action == "FailIndex" and spec.get("backoffLimitPerIndex") is None:
            errs.add(f"{rp}.action", "FieldValueInvalid",
                     "requires the backoffLimitPerIndex to be set", action)
        codes, conds = rule.get("onExitCodes"), rule.get("onPodConditions")
        if (codes is None) == (conds is None):
            errs.add(rp, "FieldValueInvalid", "specifying one of OnExitCodes and "
                     "OnPodConditions is required" if codes is None else
                     "specifying both OnExitCodes and OnPodConditions is not supported", "")
        if codes is not None:
            op, values = codes.get("operator"), codes.get("values") or []
            if op not in ("In", "NotIn"):
                errs.add(f"{rp}.onExitCodes.operator", "FieldValueNotSupported", "", op)
            if not values:
                errs.add(f"{rp}.onExitCodes.values", "FieldValueRequired")
            if values != sorted(set(values)):
                errs.add(f"{rp}.onExitCodes.values", "FieldValueInvalid",
                         "must be ordered and unique", values)
            if op == "In" and 0 in values:
                errs.add(f"{rp}.onExitCodes.values", "FieldValueInvalid",
                         "must not be 0 for the In operator", 0)
            cname = codes.get("containerName")
            if cname is not None and cname not in names:
                errs.add(f"{rp}.onExitCodes.containerName", "FieldValueInvalid",
                         "must be one of the container or initContainer names in the pod "
                         "template", cname)
        for j, pat in enumerate(conds or []):
            if not pat.get("type"):
                errs.add(f"{rp}.onPodConditions[{j}].type", "FieldValueRequired")
            if pat.get("status", "True") not in ("True", "False", "Unknown"):
                errs.add(f"{rp}.onPodConditions[{j}].status", "FieldValueNotSupported", "",
                         pat.get("status"))


def validate_job(job: dict) -> None:
    errs = Errors()
    meta = job.get("metadata") or {}
    validate_meta(errs, meta, label_name=True)
    spec = job.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
        errs.add("spec.template", "FieldValueRequired")
        errs.raise_if_any("Job", "batch", meta.get("name", ""))
        return
    for key in INT_FIELDS:
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ApiError(400, "BadRequest", f"json: cannot unmarshal {type(value).__name__} "
                           f"into Go struct field JobSpec.spec.{key} of type int")
        if isinstance(value, int) and value < 0:
            errs.add(f"spec.{key}", "FieldValueInvalid",
                     "must be greater than or equal to 0", value)
    if spec.get("manualSelector") or spec.get("selector"):
        errs.add("spec.selector", "FieldValueInvalid",
                 "`selector` will be auto-generated (manualSelector is not supported)", "")
    for unsupported in ("successPolicy", "managedBy"):  # accepted by the API, not emulated
        if spec.get(unsupported) is not None:
            errs.add(f"spec.{unsupported}", "FieldValueForbidden",
                     "not implemented by the fake apiserver")
    mode = spec.get("completionMode", "NonIndexed")
    if mode not in ("NonIndexed", "Indexed"):
        errs.add("spec.completionMode", "FieldValueNotSupported",
                 'supported values: "NonIndexed", "Indexed"', mode)
    if mode == "Indexed" and spec.get("completions") is None:
        errs.add("spec.completions", "FieldValueRequired", "when completion mode is Indexed")
    if spec.get("backoffLimitPerIndex") is not None and mode != "Indexed":
        errs.add("spec.backoffLimitPerIndex", "FieldValueForbidden",
                 "requires indexed completion mode")
    if spec.get("maxFailedIndexes") is not None:
        if spec.get("backoffLimitPerIndex") is None:
            errs.add("spec.backoffLimitPerIndex", "FieldValueRequired",
                     "when maxFailedIndexes is specified")
        elif spec["maxFailedIndexes"] > (spec.get("completions") or 0):
            errs.add("spec.maxFailedIndexes", "FieldValueInvalid",
                     "must be less than or equal to completions", spec["maxFailedIndexes"])
    if not isinstance(spec.get("suspend", False), bool):
        errs.add("spec.suspend", "FieldValueInvalid", "must be a boolean", spec.get("suspend"))
    tmpl = spec["template"]
    _labels(errs, (tmpl.get("metadata") or {}).get("labels"), "spec.template.metadata.labels")
    pod_spec = tmpl.get("spec") or {}
    validate_pod_spec(errs, pod_spec, "spec.template.spec", job=True)
    _validate_failure_policy(errs, spec, {c.get("name") for c in pod_spec.get("containers") or []})
    errs.raise_if_any("Job", "batch", meta.get("name") or meta.get("generateName", ""))


def validate_pod(pod: dict) -> None:
    errs = Errors()
    meta = pod.get("metadata") or {}
    validate_meta(errs, meta)
    validate_pod_spec(errs, pod.get("spec") or {}, "spec", job=False)
    errs.raise_if_any("Pod", "", meta.get("name") or meta.get("generateName", ""))


def default_pod_spec(spec: dict) -> None:
    """The defaults the apiserver fills into a PodSpec (what a GET shows back)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    for vol in spec.get("volumes") or []:
        if len(vol) == 1:
            vol["emptyDir"] = {}
    for c in spec.get("containers") or []:
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = c.get("image", "")
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        c.setdefault("imagePullPolicy", "Always" if latest and "@" not in image else "IfNotPresent")
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("fieldRef")
            if ref is not None:
                ref.setdefault("apiVersion", "v1")
        # limits without requests default the requests (apiserver defaulting)
        res = c["resources"]
        if res.get("limits"):
            res["requests"] = {**res["limits"], **(res.get("requests") or {})}


def default_job(job: dict, uid: str) -> None:
    spec = job["spec"]
    spec.setdefault("completionMode", "NonIndexed")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    per_index = spec.get("backoffLimitPerIndex") is not None
    spec.setdefault("backoffLimit", MAX_INT32 if per_index else 6)
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy",
                    "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
        for pat in rule.get("onPodConditions") or []:
            pat.setdefault("status", "True")
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    tmeta = spec["template"].setdefault("metadata", {})
    name = job["metadata"]["name"]
    tmeta["labels"] = {**(tmeta.get("labels") or {}),
                       "batch.kubernetes.io/controller-uid": uid,
                       "batch.kubernetes.io/job-name": name,
                       "controller-uid": uid, "job-name": name}
    if not job["metadata"].get("labels"):
        job["metadata"]["labels"] = copy.deepcopy(tmeta["labels"])
    default_pod_spec(spec["template"].setdefault("spec", {}))
