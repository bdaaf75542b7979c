// Command k8scheck decodes Kubernetes manifests strictly into the real API
// types (k8s.io/api, prometheus-operator's monitoring/v1), so a misspelt or
// misplaced field, a wrong type or a duplicate key fails instead of being
// silently dropped by the API server's lenient decoding of older clients.
//
//	helm template ... | k8scheck -
//	k8scheck deploy/kubernetes/sidecar.yaml
//
// Besides the strict decode it checks what the types cannot: references
// inside the rendered set (a Deployment's ConfigMap/Secret volumes must be
// defined in the input unless marked optional or named with -external; probe
// and Service ports named by a container; selectors matching the pod
// template's labels).
//
// Exit status: 0 clean, 1 problems (one "file: doc N (kind/name): problem" per
// line on stdout), 2 usage or unreadable input.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// newObject returns a pointer to the API type of apiVersion/kind.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}, true
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}, true
	case "monitoring.coreos.com/v1/PodMonitor":
		return &monitoringv1.PodMonitor{}, true
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}, true
	}
	return nil, false
}

type doc struct {
	file  string
	index int
	kind  string
	name  string
	obj   any
}

func (d doc) String() string { return fmt.Sprintf("%s: doc %d (%s/%s)", d.file, d.index, d.kind, d.name) }

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var external stringList
	flag.Var(&external, "external", "kind/name (ConfigMap/x, Secret/y) that exists outside the input; repeatable")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: k8scheck [-external Kind/name]... file.yaml... (- for stdin)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var docs []doc
	var problems []string
	for _, file := range flag.Args() {
		var r io.Reader
		if file == "-" {
			r = os.Stdin
		} else {
			f, err := os.Open(file)
			if err != nil {
				fmt.Fprintf(os.Stderr, "k8scheck: %v\n", err)
				os.Exit(2)
			}
			defer f.Close()
			r = f
		}
		d, p, err := decodeAll(file, r)
		if err != nil {
			fmt.Fprintf(os.Stderr, "k8scheck: %s: %v\n", file, err)
			os.Exit(2)
		}
		docs = append(docs, d...)
		problems = append(problems, p...)
	}
	if len(docs) == 0 && len(problems) == 0 {
		problems = append(problems, "no Kubernetes objects in the input")
	}
	problems = append(problems, crossCheck(docs, external)...)
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "k8scheck: %d objects ok\n", len(docs))
}

func decodeAll(file string, r io.Reader) ([]doc, []string, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []doc
	var problems []string
	for index := 0; ; index++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		// YAML → JSON with duplicate keys refused (sigs.k8s.io/yaml's strict mode).
		j, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: doc %d: invalid YAML: %v", file, index, err))
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(j, &head); err != nil {
			problems = append(problems, fmt.Sprintf("%s: doc %d: not an object: %v", file, index, err))
			continue
		}
		d := doc{file: file, index: index, kind: head.Kind, name: head.Metadata.Name}
		obj, ok := newObject(head.APIVersion, head.Kind)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: unknown apiVersion/kind %q/%q", d, head.APIVersion, head.Kind))
			continue
		}
		if head.Metadata.Name == "" {
			problems = append(problems, fmt.Sprintf("%s: metadata.name is empty", d))
		}
		// Case-sensitive, unknown fields and duplicate fields refused: what the API server's strict field validation does.
		strict, err := sigsjson.UnmarshalStrict(j, obj, sigsjson.DisallowUnknownFields)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", d, err))
			continue
		}
		for _, e := range strict {
			problems = append(problems, fmt.Sprintf("%s: %v", d, e))
		}
		d.obj = obj
		docs = append(docs, d)
	}
	return docs, problems, nil
}

// stripComments drops comment-only lines, so a document of comments is empty.
func stripComments(raw []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(raw, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' || string(t) == "---" {
			continue
		}
		out = append(out, line...)
		out = append(out, '\n')
	}
	return out
}

func crossCheck(docs []doc, external []string) []string {
	defined := map[string]bool{}
	for _, e := range external {
		defined[e] = true
	}
	for _, d := range docs {
		defined[d.kind+"/"+d.name] = true
	}
	var problems []string
	var pods []podOf
	for _, d := range docs {
		if dep, ok := d.obj.(*appsv1.Deployment); ok {
			problems = append(problems, checkDeployment(d, dep, defined)...)
			pods = append(pods, podOf{d, dep.Spec.Template.Labels, dep.Spec.Template.Spec})
		}
	}
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *corev1.Service:
			problems = append(problems, checkService(d, o, pods)...)
		case *policyv1.PodDisruptionBudget:
			if o.Spec.Selector == nil || !selectsAny(o.Spec.Selector.MatchLabels, pods) {
				problems = append(problems, fmt.Sprintf("%s: spec.selector matches no pod template in the input", d))
			}
		case *networkingv1.NetworkPolicy:
			if !selectsAny(o.Spec.PodSelector.MatchLabels, pods) {
				problems = append(problems, fmt.Sprintf("%s: spec.podSelector matches no pod template in the input", d))
			}
		case *monitoringv1.PodMonitor:
			if !selectsAny(o.Spec.Selector.MatchLabels, pods) {
				problems = append(problems, fmt.Sprintf("%s: spec.selector matches no pod template in the input", d))
			}
			for i, ep := range o.Spec.PodMetricsEndpoints {
				if ep.Port != nil && !podsHavePort(*ep.Port, o.Spec.Selector.MatchLabels, pods) {
					problems = append(problems, fmt.Sprintf("%s: spec.podMetricsEndpoints[%d].port %q is no container port of the selected pods", d, i, *ep.Port))
				}
			}
		}
	}
	return problems
}

type podOf struct {
	d      doc
	labels map[string]string
	spec   corev1.PodSpec
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func selectsAny(selector map[string]string, pods []podOf) bool {
	for _, p := range pods {
		if matches(selector, p.labels) {
			return true
		}
	}
	return false
}

func podsHavePort(name string, selector map[string]string, pods []podOf) bool {
	for _, p := range pods {
		if matches(selector, p.labels) && containerPort(p.spec, name) {
			return true
		}
	}
	return false
}

func containerPort(spec corev1.PodSpec, name string) bool {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

func checkDeployment(d doc, dep *appsv1.Deployment, defined map[string]bool) []string {
	var problems []string
	spec := dep.Spec.Template.Spec
	if dep.Spec.Selector == nil || !matches(dep.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
		problems = append(problems, fmt.Sprintf("%s: spec.selector does not match spec.template.metadata.labels", d))
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		if cm := v.ConfigMap; cm != nil && !(cm.Optional != nil && *cm.Optional) && !defined["ConfigMap/"+cm.Name] {
			problems = append(problems, fmt.Sprintf("%s: volume %q references ConfigMap %q, which is not defined (define it or pass -external ConfigMap/%s)", d, v.Name, cm.Name, cm.Name))
		}
		if s := v.Secret; s != nil && !(s.Optional != nil && *s.Optional) && !defined["Secret/"+s.SecretName] {
			problems = append(problems, fmt.Sprintf("%s: volume %q references Secret %q, which is not defined (define it or pass -external Secret/%s)", d, v.Name, s.SecretName, s.SecretName))
		}
	}
	if sa := spec.ServiceAccountName; sa != "" && sa != "default" && !defined["ServiceAccount/"+sa] {
		problems = append(problems, fmt.Sprintf("%s: serviceAccountName %q is not defined", d, sa))
	}
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		for _, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				problems = append(problems, fmt.Sprintf("%s: container %q mounts volume %q, which the pod does not define", d, c.Name, m.Name))
			}
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for what, probe := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe, "startupProbe": c.StartupProbe} {
			if probe != nil && probe.HTTPGet != nil && probe.HTTPGet.Port.Type == intstr.String && !ports[probe.HTTPGet.Port.StrVal] {
				problems = append(problems, fmt.Sprintf("%s: container %q %s port %q is not one of its ports", d, c.Name, what, probe.HTTPGet.Port.StrVal))
			}
		}
	}
	return problems
}

func checkService(d doc, svc *corev1.Service, pods []podOf) []string {
	var problems []string
	var selected []podOf
	for _, p := range pods {
		if matches(svc.Spec.Selector, p.labels) {
			selected = append(selected, p)
		}
	}
	if len(selected) == 0 {
		return append(problems, fmt.Sprintf("%s: spec.selector matches no pod template in the input", d))
	}
	for _, port := range svc.Spec.Ports {
		if port.TargetPort.Type != intstr.String {
			continue
		}
		found := false
		for _, p := range selected {
			found = found || containerPort(p.spec, port.TargetPort.StrVal)
		}
		if !found {
			problems = append(problems, fmt.Sprintf("%s: port %q targets %q, no container port of the selected pods", d, port.Name, port.TargetPort.StrVal))
		}
	}
	return problems
}
