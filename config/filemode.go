package config

import (
	"fmt"
	"os"
)

// The groups the Linux packages run the two programs as.
const (
	AgentGroup   = "oxbroker"
	GatewayGroup = "oxbroker-gateway"
)

// fileAccess is what checkSecretFile found about who else may use a file
// that holds a secret: problem makes the file unusable (an error), advice
// is a warning to act on. Both are full sentences with the command that
// fixes them, and never quote the file's content.
type fileAccess struct {
	problem string
	advice  string
}

// checkSecretFile judges who else may read or write the secret file name,
// opened as f, as the operating system says. The open file is what is
// judged, so a symbolic link is judged by its target, and a file swapped
// after the check is not the one read. A file others may write is refused:
// whoever can write it can swap the token, and with it what the broker
// authenticates as. A file others may read is a warning: the token leaks
// to them, but a broker that stopped over it would take a working
// service offline at the next restart.
//
// serviceGroup is the group the packages run the program as (AgentGroup,
// GatewayGroup): a file that group may read is the documented layout.
func checkSecretFile(name, serviceGroup string, f *os.File) (fileAccess, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileAccess{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileAccess{problem: fmt.Sprintf("%s is not a regular file", name)}, nil
	}
	return secretFileAccess(name, serviceGroup, fi), nil
}
