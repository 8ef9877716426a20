//go:build !unix

package config

// UnreadableBy judges nothing where there are no unix modes: the services
// of those systems (Windows, LocalSystem) read every file.
func UnreadableBy(username, path string) (string, error) { return "", nil }

// deniedError leaves err as it is.
func deniedError(name string, err error) error { return err }
