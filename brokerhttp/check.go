package brokerhttp

// CheckStep is one step of a check as the agent words it. It is what
// `oxbroker check --json` prints for each step, what the agent answers a
// remote check with (POST /v1/brokers/{broker}/sites/{site}/check, inside
// the site's report) and what the gateway's status API keeps of that
// answer: one type, so that the agent's words and the gateway's reading
// of them cannot drift apart. A failure always has Cause and Fix, each one
// sentence; a warning usually has them too.
type CheckStep struct {
	// Name is the check: dns, tcp, tls, quic, auth for the gateway;
	// cloud_id, dns, tcp, tls, credentials, permissions for a site.
	Name string `json:"name"`
	// Status is one of the Check* values.
	Status string `json:"status"`
	// Detail says what was checked and found.
	Detail     string `json:"detail,omitempty"`
	Cause      string `json:"cause,omitempty"`
	Fix        string `json:"fix,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// The statuses of a check step.
const (
	CheckPass = "pass"
	CheckFail = "fail"
	CheckWarn = "warn"
	CheckSkip = "skip"
)
