package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validAgent() *Agent {
	return &Agent{
		Broker:   Broker{ID: "acme-prod", Token: "t"},
		StateDir: "/var/lib/oxbroker",
		Gateway:  GatewayDial{Address: "gw.example:443", Transport: TransportAuto, Connections: 2},
		Sites: []Site{{
			Name:          "jira",
			Type:          "jira",
			URL:           "https://api.atlassian.com/ex/jira/18cd6e54-b562-4ed3-8a43-ca1fc772b26f",
			AtlassianAPI:  "https://api.atlassian.com",
			Auth:          Auth{Type: AuthServiceAccount, Token: "t"},
			Allow:         Allow{Scopes: []string{"read:jira-work"}},
			Timeout:       time.Minute,
			MaxConcurrent: 32,
			MaxBody:       50 << 20,
		}},
		Admin: Admin{Listen: "127.0.0.1:9108"},
		Log:   Log{Level: "info", Format: "text"},
	}
}

func TestValidateAgent(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Agent)
		want   string // "" for valid
	}{
		{"valid", func(*Agent) {}, ""},
		{"token from file", func(a *Agent) { a.Broker.Token, a.Broker.TokenFile = "", "/x" }, ""},
		{"no token", func(a *Agent) { a.Broker.Token = "" }, "broker.token: required (set token or token_file)"},
		{"long id", func(a *Agent) { a.Broker.ID = "a234567890123456789012345678901234567890123456789012345678901234" },
			"broker.id: must be 1 to 63 lowercase letters, digits or dashes, starting with a letter or digit"},
		{"gateway port 0", func(a *Agent) { a.Gateway.Address = "gw:0" }, "gateway.address: port must be a number from 1 to 65535"},
		{"gateway IPv6", func(a *Agent) { a.Gateway.Address = "[2001:db8::1]:443" }, ""},
		{"proxy with password", func(a *Agent) { a.Gateway.Proxy = "http://u:p@proxy:3128" }, ""},
		{"proxy without host", func(a *Agent) { a.Gateway.Proxy = "http://" }, "gateway.proxy: must be an absolute http or https URL"},
		{"connections 0", func(a *Agent) { a.Gateway.Connections = 0 }, "gateway.connections: must be from 1 to 16"},
		{"cloud_site name", func(a *Agent) { a.Sites[0].URL, a.Sites[0].CloudSite = "", "acme" }, ""},
		{"cloud_site host", func(a *Agent) { a.Sites[0].URL, a.Sites[0].CloudSite = "", "acme.atlassian.net" }, ""},
		{"cloud_site URL", func(a *Agent) { a.Sites[0].URL, a.Sites[0].CloudSite = "", "https://acme.atlassian.net/" }, ""},
		{"cloud_site path", func(a *Agent) { a.Sites[0].URL, a.Sites[0].CloudSite = "", "acme.atlassian.net/x?y" },
			"sites[0].cloud_site: must be a site such as acme, acme.atlassian.net or https://acme.atlassian.net"},
		{"cloud_site without atlassian_api", func(a *Agent) { a.Sites[0].URL, a.Sites[0].CloudSite, a.Sites[0].AtlassianAPI = "", "acme", "" },
			"sites[0].atlassian_api: required"},
		{"relative url", func(a *Agent) { a.Sites[0].URL = "/ex/jira/x" }, "sites[0].url: must be an absolute http or https URL"},
		{"url fragment", func(a *Agent) { a.Sites[0].URL += "#" }, "sites[0].url: must not have a query or fragment"},
		{"url query", func(a *Agent) { a.Sites[0].URL += "?" }, "sites[0].url: must not have a query or fragment"},
		{"url userinfo", func(a *Agent) { a.Sites[0].URL = "https://u@api.atlassian.com/ex/jira/x" },
			"sites[0].url: must not hold credentials; set them under auth"},
		{"service account on atlassian.net", func(a *Agent) { a.Sites[0].URL = "https://Acme.Atlassian.net/" },
			"sites[0].url: service-account tokens work only through https://api.atlassian.com/ex/jira/<cloudId>; " +
				"set url to that (find the Cloud ID at https://acme.atlassian.net/_edge/tenant_info) or use cloud_site"},
		{"service account path", func(a *Agent) { a.Sites[0].URL = "https://api.atlassian.com/ex/jira/" },
			"sites[0].url: service-account tokens need a URL of the form https://api.atlassian.com/ex/jira/<cloudId>, or use cloud_site"},
		{"basic on atlassian.net", func(a *Agent) {
			a.Sites[0].URL, a.Sites[0].Auth.Type, a.Sites[0].Auth.Email = "https://acme.atlassian.net", AuthBasic, "me@acme.com"
		}, ""},
		{"bearer on Data Center", func(a *Agent) { a.Sites[0].URL, a.Sites[0].Auth.Type = "http://jira.acme.local:8080/jira", AuthBearer }, ""},
		{"bearer with email", func(a *Agent) { a.Sites[0].Auth.Type, a.Sites[0].Auth.Email = AuthBearer, "me@acme.com" },
			"sites[0].auth.email: only used with auth type basic"},
		{"rule", func(a *Agent) {
			a.Sites[0].Allow.Rules = []AllowRule{{Methods: []string{"GET", "OPTIONS"}, Path: "/rest/agile/1.0/board"}}
		}, ""},
		{"allow.headers", func(a *Agent) { a.Sites[0].Allow.Headers = []string{"X-Acme-Trace", "traceparent"} }, ""},
		{"allow.headers underscore", func(a *Agent) { a.Sites[0].Allow.Headers = []string{"X-Ok", "X_Forwarded_For"} },
			`sites[0].allow.headers[1]: "X_Forwarded_For" must not contain "_" (some servers read it as "-"); such headers are never forwarded`},
		{"allow.headers Proxy-*", func(a *Agent) { a.Sites[0].Allow.Headers = []string{"proxy-authorization"} },
			`sites[0].allow.headers[0]: "proxy-authorization" carries credentials or an identity and is never forwarded; the agent sets the site's own`},
		{"allow.headers X-Forwarded-*", func(a *Agent) { a.Sites[0].Allow.Headers = []string{"X-FORWARDED-HOST"} },
			`sites[0].allow.headers[0]: "X-FORWARDED-HOST" says where a request comes from or goes, or changes its method or URL, and is never forwarded`},
		{"rule method", func(a *Agent) { a.Sites[0].Allow.Rules = []AllowRule{{Methods: []string{"CONNECT"}, Path: "/"}} },
			"sites[0].allow.rules[0].methods[0]: must be one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS"},
		{"max_concurrent", func(a *Agent) { a.Sites[0].MaxConcurrent = 10001 }, "sites[0].max_concurrent: must be from 1 to 10000"},
		{"admin off", func(a *Agent) { a.Admin.Listen = "" }, ""},
		{"admin any interface, any port", func(a *Agent) { a.Admin.Listen = ":0" }, ""},
		{"second site", func(a *Agent) {
			s := a.Sites[0]
			s.Name = "jira"
			a.Sites = append(a.Sites, s, s)
		}, "sites[1].name: duplicate of sites[0]\nsites[2].name: duplicate of sites[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := validAgent()
			tt.change(a)
			err := a.Validate()
			if got := errText(err); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestValidateChangesNothing(t *testing.T) {
	a, err := LoadAgent("testdata/agent-valid.yaml", lookup(testEnv))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := LoadAgent("testdata/agent-valid.yaml", lookup(testEnv))
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, before) {
		t.Errorf("Validate changed the config")
	}

	var zero Agent
	err = zero.Validate()
	if !reflect.DeepEqual(zero, Agent{}) {
		t.Errorf("Validate changed a zero config")
	}
	want := Errors{
		{Path: "broker.id", Message: "required"},
		{Path: "broker.token", Message: "required (set token or token_file)"},
		{Path: "state_dir", Message: "required"},
		{Path: "gateway.address", Message: "required"},
		{Path: "gateway.transport", Message: "must be one of auto, quic, tcp"},
		{Path: "gateway.connections", Message: "must be from 1 to 16"},
		{Path: "sites", Message: "at least one site is required"},
		{Path: "log.level", Message: "must be one of debug, info, warn, error"},
		{Path: "log.format", Message: "must be one of text, json"},
	}
	var got Errors
	if !errors.As(err, &got) || !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v, want %#v", err, want)
	}
}

func TestValidateGateway(t *testing.T) {
	var g Gateway
	want := "listen.tunnel: required\n" +
		"listen.api: required\n" +
		"tls.cert_file: required\n" +
		"tls.key_file: required\n" +
		"brokers: at least one broker is required\n" +
		"registry.type: must be one of memory, redis\n" +
		"log.level: must be one of debug, info, warn, error\n" +
		"log.format: must be one of text, json"
	if got := errText(g.Validate()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if !reflect.DeepEqual(g, Gateway{}) {
		t.Errorf("Validate changed a zero config")
	}
}

func TestErrorsIsNilWhenValid(t *testing.T) {
	// A nil Errors inside an error interface would not compare equal to nil.
	if err := validAgent().Validate(); err != nil {
		t.Errorf("got %#v, want nil", err)
	}
}

// TestValidateAdvertise: registry.advertise is where other replicas send
// forwarded requests, over plain HTTP.
func TestValidateAdvertise(t *testing.T) {
	tests := []struct{ advertise, want string }{
		{"http://10.0.0.5:8081", ""},
		{"http://gw-0.gw.svc:8081/", ""},
		{"https://10.0.0.5:8081", "registry.advertise: must be an absolute http URL"},
		{"10.0.0.5:8081", "registry.advertise: must be an absolute http URL"},
		{"http://10.0.0.5:8081/internal", "registry.advertise: must be http://host:port, without a path, query or credentials"},
		{"http://u:p@10.0.0.5:8081", "registry.advertise: must be http://host:port, without a path, query or credentials"},
	}
	for _, tt := range tests {
		g := Gateway{
			Listen:   GatewayListen{Tunnel: ":8443", API: ":8080", Internal: ":8081"},
			TLS:      GatewayTLS{CertFile: "c", KeyFile: "k"},
			Brokers:  []BrokerEntry{{ID: "acme", Token: "sha256:" + strings.Repeat("0", 64)}},
			Registry: Registry{Type: RegistryRedis, URL: "redis://r:6379/0", Advertise: tt.advertise},
			Cluster:  Cluster{SecretFile: "s"},
			Log:      Log{Level: "info", Format: "text"},
		}
		if got := errText(g.Validate()); got != tt.want {
			t.Errorf("advertise %q: got %q, want %q", tt.advertise, got, tt.want)
		}
	}
}
