package config

func defaultAgentPath() string { return "/Library/Application Support/OXBroker/config.yaml" }

// defaultStateDir is the Unix one, as the contract documents a single
// state_dir default for every Unix system.
func defaultStateDir() string { return "/var/lib/oxbroker" }
