{{/* Chart name, cut to the 63 characters a Kubernetes name may have. */}}
{{- define "canopy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; the release name alone when it already contains the chart name. */}}
{{- define "canopy.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "canopy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "canopy.labels" -}}
helm.sh/chart: {{ include "canopy.chart" . }}
app.kubernetes.io/name: {{ include "canopy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector of one group's pods. Argument: dict "root" $ "group" "api"|"worker". */}}
{{- define "canopy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canopy.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .group }}
{{- end }}

{{- define "canopy.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "canopy.secretName" -}}
{{- default (include "canopy.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "canopy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "canopy.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
One group's Canopy config file: `config` with the group's `config` merged over
it and the group's `roles` set. Argument: dict "root" $ "group" "api"|"worker".
*/}}
{{- define "canopy.groupConfig" -}}
{{- $group := index .root.Values .group }}
{{- $config := mergeOverwrite (deepCopy .root.Values.config) (deepCopy (default dict $group.config)) }}
{{- $_ := set $config "roles" $group.roles }}
{{- toYaml $config }}
{{- end }}

{{/* One group's Deployment. Argument: dict "root" $ "group" "api"|"worker". */}}
{{- define "canopy.deployment" -}}
{{- $root := .root }}
{{- $group := index $root.Values .group }}
{{- $autoscaling := default dict $group.autoscaling }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "canopy.fullname" $root }}-{{ .group }}
  labels:
    {{- include "canopy.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .group }}
spec:
  {{- if not $autoscaling.enabled }}
  replicas: {{ $group.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "canopy.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "canopy.selectorLabels" . | nindent 8 }}
      annotations:
        # A config change rolls the pods.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "canopy.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: canopy
          image: {{ include "canopy.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ['up', '--config', '/etc/canopy/canopy.yaml']
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ $root.Values.config.http.port }}
              protocol: TCP
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            # Names this process in workflow run leases.
            - name: CANOPY_WORKFLOWS_INSTANCE_ID
              value: $(POD_NAME)
            {{- if eq .group "worker" }}
            - name: CANOPY_MQTT_CLIENT_CLIENT_ID
              value: {{ printf "%s$(POD_NAME)" $group.mqttClientIdPrefix | quote }}
            {{- end }}
          envFrom:
            - secretRef:
                name: {{ include "canopy.secretName" $root }}
          livenessProbe:
            httpGet:
              path: {{ $root.Values.probes.liveness.path }}
              port: http
            initialDelaySeconds: {{ $root.Values.probes.liveness.initialDelaySeconds }}
            periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
            failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet:
              path: {{ $root.Values.probes.readiness.path }}
              port: http
            periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
            failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
          resources:
            {{- toYaml $group.resources | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/canopy
              readOnly: true
            - name: data
              mountPath: {{ $root.Values.config.dataDir }}
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: config
          configMap:
            name: {{ include "canopy.fullname" $root }}
            items:
              - key: {{ .group }}.yaml
                path: canopy.yaml
        - name: data
          emptyDir:
            sizeLimit: {{ $root.Values.dataVolume.sizeLimit }}
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpVolume.sizeLimit }}
      {{- with $group.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $group.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $group.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* One group's Service. Argument: dict "root" $ "group" "api"|"worker". */}}
{{- define "canopy.service" -}}
{{- $group := index .root.Values .group }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "canopy.fullname" .root }}-{{ .group }}
  labels:
    {{- include "canopy.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .group }}
spec:
  type: {{ $group.service.type }}
  ports:
    - name: http
      port: {{ $group.service.port }}
      targetPort: http
      protocol: TCP
  selector:
    {{- include "canopy.selectorLabels" . | nindent 4 }}
{{- end }}
