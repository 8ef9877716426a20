package main

import "github.com/kardianos/service"

const logHint = "tail -f /var/log/oxbroker.err.log"

// serviceUser is "": the daemon runs as root.
func serviceUser() string { return "" }

// platformInstall asks launchd to start the daemon at boot (RunAtLoad)
// and to start it again whenever it exits (KeepAlive).
func platformInstall(installPlan) (service.KeyValue, []string, error) {
	return service.KeyValue{"RunAtLoad": true, "KeepAlive": true},
		[]string{"daemon: /Library/LaunchDaemons/" + serviceName + ".plist (starts at boot, restarted when it exits)"}, nil
}

func prepareInstall(installPlan) error { return nil }

func checkManager() error { return nil }
