package jira

// ProbeUserAgent is the User-Agent of the calls the agent makes on its own
// to see whether a site works (its probe at start, after a reload and after
// refusals in a row; agent/diag with SiteOptions.Light). Jira sees them in
// its access log under this name; the Jira stand-in keeps them apart from
// the calls OX makes.
const ProbeUserAgent = "oxbroker-probe"
