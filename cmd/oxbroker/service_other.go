//go:build !linux && !darwin && !windows

package main

import "github.com/kardianos/service"

const logHint = "the system log"

func serviceUser() string { return "" }

// platformInstall leaves the service manager's defaults.
func platformInstall(installPlan) (service.KeyValue, []string, error) { return nil, nil, nil }

func prepareInstall(installPlan) error { return nil }

func checkManager() error { return nil }
