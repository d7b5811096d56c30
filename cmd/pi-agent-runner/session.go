package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/m3ta/pi-agent/sandbox"
)

// session is what every command acting for a caller establishes first: who
// calls, the trusted config, their entry in it, the agent account.
type session struct {
	caller  sandbox.Account
	cfg     *sandbox.Config
	cfgPath string
	host    sandbox.HostUser
	agent   sandbox.Account // Home is the home inside the sandbox
}

// begin checks the caller and loads the config. Through sudo, the caller is
// SUDO_USER and no flag may change a trust setting; root calling directly
// names the caller with --as-user and may point at another config.
func begin(configFlag, asUser string) (*session, error) {
	caller, err := identify(configFlag, asUser)
	if err != nil {
		return nil, err
	}
	return beginFor(caller, configFlag)
}

// identify establishes who calls: SUDO_UID/SUDO_USER cross-checked with
// passwd, or --as-user for root calling directly.
func identify(configFlag, asUser string) (sandbox.Account, error) {
	if os.Geteuid() != 0 {
		return sandbox.Account{}, errors.New("must run as root: use the pi wrapper, which calls the runner through sudo")
	}
	caller, err := sandbox.CallerFromSudo(os.Getenv)
	switch {
	case err == nil:
		if configFlag != "" || asUser != "" {
			return sandbox.Account{}, errors.New("--config and --as-user are for root calling the runner directly; they are refused through sudo")
		}
	case errors.Is(err, sandbox.ErrNotSudo):
		if asUser == "" {
			return sandbox.Account{}, errors.New("no caller: run through the pi wrapper (sudo), or as root with --as-user NAME")
		}
		if caller, err = sandbox.Lookup(asUser); err != nil {
			return sandbox.Account{}, err
		}
	default:
		return sandbox.Account{}, fmt.Errorf("caller identity: %w", err)
	}
	return caller, nil
}

// beginFor loads the config for an identified caller and checks their
// entry in it and the agent account.
func beginFor(caller sandbox.Account, configFlag string) (*session, error) {
	var err error
	ss := &session{caller: caller, cfgPath: configFlag}
	if ss.cfgPath == "" {
		ss.cfgPath = sandbox.DefaultConfigPath
	}
	if ss.cfg, err = sandbox.LoadConfig(ss.cfgPath, 0); err != nil {
		return nil, err
	}
	host, ok := ss.cfg.HostUsers[caller.Name]
	if !ok {
		return nil, &sandbox.PolicyError{Msg: fmt.Sprintf("user %s is not allowed to run the agent\nhint: the administrator adds hostUsers.%s.projectRoots to %s", caller.Name, caller.Name, ss.cfgPath)}
	}
	ss.host = host

	agent, err := sandbox.Lookup(ss.cfg.User)
	if err != nil {
		return nil, fmt.Errorf("agent account: %w (create the %s system user, or set \"user\" in the config)", err, ss.cfg.User)
	}
	agentGID, err := sandbox.LookupGroup(ss.cfg.Group)
	if err != nil {
		return nil, fmt.Errorf("agent group: %w", err)
	}
	if agent.UID == 0 || agentGID == 0 || agent.UID == caller.UID {
		return nil, fmt.Errorf("agent account %s (uid %d, gid %d) must be a dedicated unprivileged user", ss.cfg.User, agent.UID, agentGID)
	}
	agent.GID, agent.Groups = agentGID, nil
	agent.Home = sandbox.AgentHome(agent.Name)
	ss.agent = agent

	if err := sandbox.CheckTrustedDir(filepath.Dir(ss.cfg.StateDir), 0); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if _, err := os.Lstat(ss.cfg.StateDir); err == nil {
		if err := sandbox.CheckTrustedDir(ss.cfg.StateDir, 0); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	return ss, nil
}

// runtimeDir is <stateDir>/users/<name>/agent.
func (ss *session) runtimeDir() string {
	return filepath.Join(ss.cfg.StateDir, "users", ss.caller.Name, "agent")
}
