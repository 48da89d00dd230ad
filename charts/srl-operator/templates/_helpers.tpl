{{- define "srl-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "srl-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "srl-operator.labels" -}}
{{ include "srl-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The operator pod's selector labels as k=v,k=v (SRL_OPERATOR_POD_LABELS: NetworkPolicy peers). */}}
{{- define "srl-operator.selectorLabelsCsv" -}}
{{- $pairs := list -}}
{{- range $k, $v := include "srl-operator.selectorLabels" . | fromYaml -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{- define "srl-operator.serviceAccountName" -}}
{{- default (include "srl-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Namespaces the operator watches in namespaced scope (default: the release namespace). */}}
{{- define "srl-operator.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- join "," .Values.watchNamespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "srl-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "srl-operator.runtimeImage" -}}
{{- printf "%s:%s" .Values.runtimeImage.repository (default .Chart.AppVersion .Values.runtimeImage.tag) -}}
{{- end -}}

{{/*
Exactly what the operator does (operator/srl_operator): kopf lists, watches and patches
RLExperiments (finalizer, progress annotations, status); the reconciler lists an experiment's
children by label and creates/deletes them; Events record what it did. `rlexperiments/finalizers`
update lets it set blockOwnerDeletion on owner references where the OwnerReferencesPermissionEnforcement
admission plugin is on. Secrets: get and create only (never list, watch, update or delete) — the
operator creates each experiment's <exp>-redis-auth once and reads it by name to talk to that Redis;
pods get passwords and the MongoDB URI through secretKeyRef. Deployments are patched when the Redis
template changes; the NetworkPolicy <exp>-isolation when its peers change.
*/}}
{{- define "srl-operator.rules" -}}
- apiGroups: [srl.dev]
  resources: [rlexperiments]
  verbs: [list, watch, patch]
- apiGroups: [srl.dev]
  resources: [rlexperiments/status]
  verbs: [patch]
- apiGroups: [srl.dev]
  resources: [rlexperiments/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [pods, services]
  verbs: [list, watch, create, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [list, watch, create]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, watch, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
