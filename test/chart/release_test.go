package chart

// A rendering of the chart, every manifest decoded strictly into its API type.

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ServiceMonitor (monitoring.coreos.com/v1), the fields the chart renders.
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		NamespaceSelector *struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port              string           `json:"port"`
			Path              string           `json:"path"`
			Interval          string           `json:"interval"`
			ScrapeTimeout     string           `json:"scrapeTimeout"`
			Relabelings       []map[string]any `json:"relabelings"`
			MetricRelabelings []map[string]any `json:"metricRelabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// ScaledObject (keda.sh/v1alpha1), the fields the chart renders. Trigger metadata must be strings.
type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval"`
		CooldownPeriod  *int32 `json:"cooldownPeriod"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
			} `json:"horizontalPodAutoscalerConfig"`
		} `json:"advanced"`
		Triggers []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef"`
		} `json:"triggers"`
	} `json:"spec"`
}

// TriggerAuthentication (keda.sh/v1alpha1), the fields the chart renders.
type triggerAuthentication struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

// release is one rendering of the chart, every manifest decoded.
type release struct {
	raw            map[string]string // kind/name → manifest text
	meta           map[string]metav1.ObjectMeta
	deployment     *appsv1.Deployment
	configMap      *corev1.ConfigMap
	secret         *corev1.Secret
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	serviceMonitor *serviceMonitor
	scaledObject   *scaledObject
	triggerAuth    *triggerAuthentication
}

// decodeStrict decodes one YAML manifest into v, failing on any field v does not have.
func decodeStrict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// parseRelease splits helm's output and decodes every manifest into its API type.
func parseRelease(t *testing.T, out string) *release {
	t.Helper()
	r := &release{raw: map[string]string{}, meta: map[string]metav1.ObjectMeta{}}
	for _, doc := range docSeparator.Split(out, -1) {
		var head struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("rendered manifest is not YAML: %v\n%s", err, doc)
		}
		if head.Kind == "" {
			continue // comments only
		}
		id := head.Kind + "/" + head.Metadata.Name
		if _, dup := r.raw[id]; dup {
			t.Fatalf("%s rendered twice", id)
		}
		r.raw[id] = doc
		r.meta[id] = head.Metadata
		var target any
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			r.deployment = new(appsv1.Deployment)
			target = r.deployment
		case "v1 ConfigMap":
			r.configMap = new(corev1.ConfigMap)
			target = r.configMap
		case "v1 Secret":
			r.secret = new(corev1.Secret)
			target = r.secret
		case "v1 Service":
			r.service = new(corev1.Service)
			target = r.service
		case "v1 ServiceAccount":
			r.serviceAccount = new(corev1.ServiceAccount)
			target = r.serviceAccount
		case "policy/v1 PodDisruptionBudget":
			r.pdb = new(policyv1.PodDisruptionBudget)
			target = r.pdb
		case "autoscaling/v2 HorizontalPodAutoscaler":
			r.hpa = new(autoscalingv2.HorizontalPodAutoscaler)
			target = r.hpa
		case "monitoring.coreos.com/v1 ServiceMonitor":
			r.serviceMonitor = new(serviceMonitor)
			target = r.serviceMonitor
		case "keda.sh/v1alpha1 ScaledObject":
			r.scaledObject = new(scaledObject)
			target = r.scaledObject
		case "keda.sh/v1alpha1 TriggerAuthentication":
			r.triggerAuth = new(triggerAuthentication)
			target = r.triggerAuth
		default:
			t.Fatalf("unexpected manifest %s %s", head.APIVersion, head.Kind)
		}
		if err := decodeStrict([]byte(doc), target); err != nil {
			t.Fatalf("%s does not decode strictly into its API type: %v\n%s", id, err, doc)
		}
	}
	for _, m := range []struct {
		name    string
		missing bool
	}{
		{"Deployment", r.deployment == nil},
		{"ConfigMap", r.configMap == nil},
		{"Service", r.service == nil},
	} {
		if m.missing {
			t.Fatalf("no %s rendered", m.name)
		}
	}
	return r
}

func isSubset(sub, super map[string]string) bool {
	if len(sub) == 0 {
		return false
	}
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
