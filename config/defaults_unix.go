//go:build !windows && !darwin

package config

func defaultAgentPath() string { return "/etc/oxbroker/config.yaml" }

func defaultStateDir() string { return "/var/lib/oxbroker" }
