package packaging

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/oxsecurity/oxbroker/config"
)

// helmRenders are the files "make helm" writes with "helm template": the
// chart with its default values, and with ci/redis-values.yaml.
var helmRenders = []string{"default.yaml", "redis.yaml"}

// helmDirOrSkip returns the folder of the rendered chart: $OXBROKER_HELM_OUT
// ("make helm" sets it) or ../dist/helm, skipping when neither is there.
func helmDirOrSkip(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("OXBROKER_HELM_OUT"); dir != "" {
		return dir
	}
	dir := filepath.Join("..", "dist", "helm")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		t.Skip("dist/helm is missing: make helm renders the chart and runs this test")
	}
	return dir
}

// object is one Kubernetes object, as decoded YAML.
type object map[string]any

// get walks o along keys (map keys, or list indexes as ints).
func (o object) get(keys ...any) any {
	var v any = map[string]any(o)
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func (o object) str(keys ...any) string { s, _ := o.get(keys...).(string); return s }

func renderedObjects(t *testing.T, path string) map[string][]object {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]object{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if err == io.EOF {
			return byKind
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if o != nil {
			byKind[object(o).str("kind")] = append(byKind[object(o).str("kind")], o)
		}
	}
}

// TestHelmChart checks what the chart renders: probes on the admin port
// where the gateway's admin listener really is, a locked-down pod, the
// services, the PDB, and a config the gateway accepts.
func TestHelmChart(t *testing.T) {
	dir := helmDirOrSkip(t)
	for _, name := range helmRenders {
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			objs := renderedObjects(t, filepath.Join(dir, name))
			for kind, n := range map[string]int{"Deployment": 1, "Service": 2, "Secret": 1, "PodDisruptionBudget": 1} {
				if len(objs[kind]) != n {
					t.Fatalf("%d %s, want %d", len(objs[kind]), kind, n)
				}
			}
			dep := objs["Deployment"][0]
			pod := object(dep.get("spec", "template", "spec").(map[string]any))
			c := object(pod.get("containers", 0).(map[string]any))

			ports := map[string]int{} // name/protocol -> port
			for _, p := range c.get("ports").([]any) {
				p := object(p.(map[string]any))
				ports[p.str("name")+"/"+p.str("protocol")] = p.get("containerPort").(int)
			}
			for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
				if got := c.str(probe, "httpGet", "path"); got != path {
					t.Errorf("%s path: got %q, want %q", probe, got, path)
				}
				if got := c.str(probe, "httpGet", "port"); got != "admin" {
					t.Errorf("%s port: got %q, want the admin port", probe, got)
				}
			}
			if ports["tunnel-tcp/TCP"] == 0 || ports["tunnel-udp/UDP"] != ports["tunnel-tcp/TCP"] || ports["admin/TCP"] == 0 {
				t.Errorf("container ports %v: want tunnel on TCP and UDP (one port) and admin", ports)
			}

			for _, keys := range [][]any{
				{"securityContext", "runAsNonRoot"}, {"securityContext", "readOnlyRootFilesystem"},
			} {
				if c.get(keys...) != true {
					t.Errorf("container %v: got %v, want true", keys, c.get(keys...))
				}
			}
			if c.get("securityContext", "allowPrivilegeEscalation") != false || pod.get("securityContext", "runAsNonRoot") != true {
				t.Errorf("securityContext: want no privilege escalation and a non-root pod, got %v / %v",
					c.get("securityContext"), pod.get("securityContext"))
			}
			if c.get("resources", "requests") == nil || c.get("resources", "limits") == nil {
				t.Errorf("resources: got %v, want requests and limits", c.get("resources"))
			}

			services := map[string][]string{}
			for _, s := range objs["Service"] {
				for _, p := range s.get("spec", "ports").([]any) {
					p := object(p.(map[string]any))
					services[s.str("metadata", "name")] = append(services[s.str("metadata", "name")], p.str("targetPort")+"/"+p.str("protocol"))
				}
			}
			var tunnel, api bool
			for _, ps := range services {
				tunnel = tunnel || slices.Equal(ps, []string{"tunnel-tcp/TCP", "tunnel-udp/UDP"})
				api = api || slices.Equal(ps, []string{"api/TCP"})
			}
			if !tunnel || !api {
				t.Errorf("services %v: want one for the tunnel (TCP and UDP) and one for the API", services)
			}

			selector := objs["PodDisruptionBudget"][0].get("spec", "selector", "matchLabels").(map[string]any)
			labels := dep.get("spec", "template", "metadata", "labels").(map[string]any)
			for k, v := range selector {
				if labels[k] != v {
					t.Errorf("the PodDisruptionBudget selects %s=%v, the pods have %v", k, v, labels[k])
				}
			}

			// The config: the admin listener must be where the probes go,
			// on every address (the kubelet does not probe over loopback).
			cfgYAML := objs["Secret"][0].str("stringData", "config.yaml")
			cfg, err := config.ParseGateway([]byte(cfgYAML), podEnv(t, c))
			if name == "default.yaml" {
				// No broker in the defaults: the gateway says so at start.
				if err == nil || !strings.Contains(err.Error(), "brokers: at least one broker is required") {
					t.Errorf("default config: got %v, want only the missing brokers refused", err)
				}
				withBroker := strings.Replace(cfgYAML, "brokers: []\n", "brokers: [{id: a, token: sha256:"+strings.Repeat("0", 64)+"}]\n", 1)
				cfg, err = config.ParseGateway([]byte(withBroker), podEnv(t, c))
			}
			if err != nil {
				t.Fatalf("the gateway refuses the rendered config: %v\n%s", err, cfgYAML)
			}
			host, port, err := net.SplitHostPort(cfg.Listen.Admin)
			if err != nil || host != "" || port != "9109" || ports["admin/TCP"] != 9109 {
				t.Errorf("listen.admin %q, container port admin %d: want :9109 and 9109", cfg.Listen.Admin, ports["admin/TCP"])
			}
			args := c.get("args").([]any)
			if cfgPath := args[len(args)-1].(string); !strings.HasPrefix(cfgPath, mountOf(t, c, "config")+"/") {
				t.Errorf("--config %s is not in the config volume", cfgPath)
			}
			if !strings.HasPrefix(cfg.TLS.CertFile, mountOf(t, c, "tls")+"/") {
				t.Errorf("tls.cert_file %s is not in the tls volume", cfg.TLS.CertFile)
			}
			if name == "redis.yaml" {
				if n := dep.get("spec", "replicas"); n != 3 {
					t.Errorf("replicas: got %v, want 3", n)
				}
				if cfg.Registry.Advertise != "http://10.0.0.5:8081" || !strings.HasPrefix(cfg.Cluster.SecretFile, mountOf(t, c, "cluster")+"/") {
					t.Errorf("registry.advertise %q, cluster.secret_file %q: want this pod's address and the cluster volume",
						cfg.Registry.Advertise, cfg.Cluster.SecretFile)
				}
			}
		})
	}
}

// podEnv is the container's environment as the gateway would see it,
// with the pod's IP 10.0.0.5 and any value from a Secret "x".
func podEnv(t *testing.T, c object) func(string) (string, bool) {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.get("env").([]any) {
		e := object(e.(map[string]any))
		v := e.str("value")
		switch {
		case e.get("valueFrom", "fieldRef", "fieldPath") == "status.podIP":
			v = "10.0.0.5"
		case e.get("valueFrom") != nil:
			v = "x"
		}
		env[e.str("name")] = strings.ReplaceAll(v, "$(POD_IP)", env["POD_IP"])
	}
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// mountOf is where the container mounts the volume named name.
func mountOf(t *testing.T, c object, name string) string {
	t.Helper()
	for _, m := range c.get("volumeMounts").([]any) {
		if m := object(m.(map[string]any)); m.str("name") == name {
			return m.str("mountPath")
		}
	}
	t.Errorf("no volume %s mounted", name)
	return "\x00"
}
