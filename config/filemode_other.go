//go:build !unix && !windows

package config

import "os"

// secretFileAccess judges nothing where the platform has neither unix
// modes nor Windows ACLs.
func secretFileAccess(string, string, os.FileInfo) fileAccess { return fileAccess{} }
