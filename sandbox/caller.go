package sandbox

import (
	"errors"
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"
)

// Account is a user as the passwd and group databases describe it.
type Account struct {
	Name   string
	UID    int
	GID    int
	Home   string
	Groups []int // supplementary groups, primary excluded
}

// Lookup resolves a user name to an Account through the passwd and group
// databases (NSS), never through the environment.
func Lookup(name string) (Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, fmt.Errorf("look up user %q: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return Account{}, fmt.Errorf("user %q has a non-numeric uid %q", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return Account{}, fmt.Errorf("user %q has a non-numeric gid %q", name, u.Gid)
	}
	a := Account{Name: u.Username, UID: uid, GID: gid, Home: u.HomeDir}
	ids, err := u.GroupIds()
	if err != nil {
		return Account{}, fmt.Errorf("look up groups of %q: %w", name, err)
	}
	for _, s := range ids {
		g, err := strconv.Atoi(s)
		if err != nil || g == gid {
			continue
		}
		a.Groups = append(a.Groups, g)
	}
	return a, nil
}

// LookupGroup resolves a group name to its gid.
func LookupGroup(name string) (int, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("look up group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// ErrNotSudo is returned by CallerFromSudo when the environment carries no
// sudo identity.
var ErrNotSudo = errors.New("not invoked through sudo")

// CallerFromSudo returns the human who ran sudo, from SUDO_UID and SUDO_USER
// (set by sudo itself, which the caller cannot override without a SETENV
// rule, and our rule grants none), cross-checked against passwd: both must
// name the same account.
func CallerFromSudo(getenv func(string) string) (Account, error) {
	uidStr, name := getenv("SUDO_UID"), getenv("SUDO_USER")
	if uidStr == "" && name == "" {
		return Account{}, ErrNotSudo
	}
	uid, err := strconv.Atoi(uidStr)
	if err != nil || uid < 0 {
		return Account{}, fmt.Errorf("SUDO_UID=%q is not a uid", uidStr)
	}
	if name == "" {
		return Account{}, errors.New("SUDO_USER is empty")
	}
	a, err := Lookup(name)
	if err != nil {
		return Account{}, err
	}
	if a.UID != uid {
		return Account{}, fmt.Errorf("SUDO_USER=%s has uid %d in passwd but SUDO_UID=%d: refusing an inconsistent identity", name, a.UID, uid)
	}
	if !filepath.IsAbs(a.Home) {
		return Account{}, fmt.Errorf("user %s has no absolute home directory in passwd (%q)", name, a.Home)
	}
	return a, nil
}
