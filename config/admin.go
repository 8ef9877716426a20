package config

import (
	"net"
	"net/netip"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// minAdminToken is the shortest admin.auth token accepted.
const minAdminToken = 16

// validate checks the page settings at path (admin) of a listener whose
// address is listen, set at listenKey. A page on a listener that is not
// loopback-only must have auth: anyone who reaches the port would see it.
func (p AdminPage) validate(errs *Errors, path, listenKey, listen string) {
	for i, h := range p.Hosts {
		errs.check(index(path+".hosts", i), required(h, hostName))
	}
	a, ap := p.Auth, path+".auth"
	errs.check(ap+".type", oneOf(a.Type, AdminAuthNone, AdminAuthBearer, AdminAuthBasic))
	switch a.Type {
	case AdminAuthNone:
		if !a.Token.IsZero() || a.TokenFile != "" || a.Username != "" || !a.PasswordHash.IsZero() {
			errs.add(ap+".type", "required when other auth keys are set: bearer or basic")
		}
		if p.Page && listen != "" && !LoopbackListen(listen) && hostPort(listen, false, 0) == "" {
			errs.add(listenKey, listen+" is not a loopback address, and the status page would be open to anyone who reaches it: "+
				"set "+ap+" (bearer or basic), listen on 127.0.0.1, or set "+path+".page: false")
		}
	case AdminAuthBearer:
		switch t := a.Token.Reveal(); {
		case t == "" && a.TokenFile == "":
			errs.add(ap+".token", "required (set token or token_file)")
		case t != "" && len(t) < minAdminToken:
			errs.add(ap+".token", "must be at least 16 characters; make one with oxbroker-gateway token or openssl rand -hex 32")
		}
		if a.Username != "" || !a.PasswordHash.IsZero() {
			errs.add(ap+".type", "username and password_hash are for type basic")
		}
	case AdminAuthBasic:
		if a.Username == "" {
			errs.add(ap+".username", "required")
		} else if strings.ContainsAny(a.Username, ":\r\n") {
			errs.add(ap+".username", `must not contain ":" or a line break`)
		}
		if a.PasswordHash.IsZero() {
			errs.add(ap+".password_hash", "required: a bcrypt hash, such as htpasswd -nbB USER PASSWORD prints after the colon")
		} else if _, err := bcrypt.Cost([]byte(a.PasswordHash.Reveal())); err != nil {
			errs.add(ap+".password_hash", "must be a bcrypt hash ($2a$, $2b$ or $2y$), such as htpasswd -nbB USER PASSWORD prints after the colon")
		}
		if !a.Token.IsZero() || a.TokenFile != "" {
			errs.add(ap+".type", "token and token_file are for type bearer")
		}
	}
}

// LoopbackListen reports whether a listen address (host:port) binds
// loopback addresses only: localhost, 127.0.0.0/8 or ::1. An empty host
// binds every interface.
func LoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// hostName checks a name of admin.hosts: a DNS name or an IP address,
// without a port or scheme.
func hostName(s string) string {
	if _, err := netip.ParseAddr(s); err == nil || hostRE.MatchString(s) {
		return ""
	}
	return "must be a host name or an IP address, without a port"
}
