//go:build !linux

package main

import "errors"

// stageCredentials refuses credentials: they are systemd's.
func stageCredentials(creds []credential) (string, func(), error) {
	if len(creds) > 0 {
		return "", func() {}, errors.New("--credential loads a systemd credential: it works on Linux only")
	}
	return "", func() {}, nil
}
