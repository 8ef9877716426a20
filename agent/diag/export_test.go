package diag

// Exported for the tests of package diag_test, which import the agent.
var (
	UnauthorizedFix = unauthorizedFix
	ScrubResults    = scrubResults
)
