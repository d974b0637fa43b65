package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// memberTimeout bounds one membership command.
const memberTimeout = 30 * time.Second

// secureDial sets how to reach a broker: CLAUDEMESH_CA and
// CLAUDEMESH_ALLOW_PLAINTEXT, as the MCP server reads them.
func secureDial(d *client.MemberDial) (err error) {
	d.RootCAs, d.AllowPlaintext, err = config.Transport(os.Getenv)
	return err
}

// defaultMemberName is user@host, in the characters a member name allows.
func defaultMemberName() string {
	name := userAtHost(func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)
	})
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// userAtHost is the user's login name @ the machine's short host name,
// each without the characters keep refuses.
func userAtHost(keep func(rune) bool) string {
	who := os.Getenv("USER")
	if u, err := user.Current(); who == "" && err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	only := func(s string) string {
		return strings.Map(func(r rune) rune {
			if keep(r) {
				return r
			}
			return -1
		}, s)
	}
	return only(who) + "@" + only(host)
}

const meshHelp = `usage: claudemesh mesh create NAME [--name MEMBER_NAME] [--broker URL]

Creates the mesh NAME (1 to 64 of a-z 0-9 . _ -) with members, this machine
its owner. Run it where the broker runs: it needs the broker's credential
from $CLAUDEMESH_HOME. Others join it with an invite (claudemesh invite).
`

// runMesh: claudemesh mesh create NAME — run where the broker runs (it
// needs the broker's operator credential from CLAUDEMESH_HOME).
func runMesh(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sub, args, err := subcommand("mesh", args, "create")
	if err != nil {
		return err
	}
	c := newCmdLine(strings.TrimSpace("mesh "+sub), meshHelp, stdout)
	name := c.String("name", "", "your member `NAME` in the mesh (default user@host)")
	brokerURL := c.String("broker", "", "the broker's `URL` (default: the broker running under CLAUDEMESH_HOME)")
	pos, err := c.parse(args, "NAME")
	if err != nil {
		return err
	}
	mesh := pos[0]
	if err := identity.ValidateMesh(mesh); err != nil {
		return usageErrorf(c.Name(), "%v", err)
	}
	if *name, err = memberName(c, *name); err != nil {
		return err
	}
	home, err := config.Home(os.Getenv)
	if err != nil {
		return err
	}
	ep, err := client.LocalEndpoint(home, *brokerURL)()
	if err != nil {
		return err
	}
	if ep.Token == "" {
		return fmt.Errorf("mesh create: no operator credential for %s: run it on the broker's machine, with the broker's CLAUDEMESH_HOME", ep.URL)
	}
	if _, err := identity.LoadMembership(home, mesh); err == nil {
		return fmt.Errorf("mesh create: this machine is already a member of a mesh named %s", mesh)
	}
	key, err := identity.NewMemberKey()
	if err != nil {
		return err
	}
	d := client.MemberDial{URL: ep.URL, Token: ep.Token, Mesh: mesh, Key: key, Name: *name}
	if err := secureDial(&d); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	mc, err := client.DialMember(ctx, d)
	if err != nil {
		return fmt.Errorf("mesh create: %w", err)
	}
	defer mc.Close()
	if err := mc.CreateMesh(ctx); err != nil {
		return fmt.Errorf("mesh create: %w", err)
	}
	if err := identity.SaveMembership(home, identity.Membership{Mesh: mesh, Broker: ep.URL, Name: *name, Role: wire.RoleOwner, Key: key, CreatedAt: time.Now()}, false); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created mesh %s on %s; you (%s) are its owner. Invite others with: claudemesh invite --mesh %s\n", mesh, ep.URL, *name, mesh)
	return nil
}

// memberName checks the --name of command c, or where it is "" picks
// the default name.
func memberName(c *cmdLine, name string) (string, error) {
	if name != "" {
		if err := wire.ValidMemberName(name); err != nil {
			return "", usageErrorf(c.Name(), "--name: %v", err)
		}
		return name, nil
	}
	name = defaultMemberName()
	if err := wire.ValidMemberName(name); err != nil {
		return "", fmt.Errorf("%s: member name %s from the user and host names: %w; give one with --name", c.Name(), name, err)
	}
	return name, nil
}

// memberConn opens a member connection for a mesh this machine belongs
// to: --mesh, else CLAUDEMESH_MESH, else the only mesh joined.
func memberConn(ctx context.Context, mesh string) (*client.MemberConn, identity.Membership, error) {
	home, err := config.Home(os.Getenv)
	if err != nil {
		return nil, identity.Membership{}, err
	}
	if mesh == "" {
		mesh = os.Getenv(config.EnvMesh)
	}
	if mesh == "" {
		all, err := identity.Memberships(home)
		if err != nil {
			return nil, identity.Membership{}, err
		}
		if len(all) == 0 {
			return nil, identity.Membership{}, errors.New("this machine is not a member of any mesh (claudemesh join, or claudemesh mesh create)")
		}
		if len(all) != 1 {
			return nil, identity.Membership{}, fmt.Errorf("name the mesh with --mesh (this machine is a member of %d meshes: %s)", len(all), strings.Join(all, ", "))
		}
		mesh = all[0]
	}
	m, err := identity.LoadMembership(home, mesh)
	if errors.Is(err, identity.ErrNoMembership) {
		return nil, m, fmt.Errorf("this machine is not a member of mesh %s (claudemesh join, or claudemesh mesh create)", mesh)
	}
	if err != nil {
		return nil, m, err
	}
	d := client.MemberDial{URL: m.Broker, Mesh: m.Mesh, Key: m.Key, Name: m.Name}
	if err := secureDial(&d); err != nil {
		return nil, m, err
	}
	mc, err := client.DialMember(ctx, d)
	return mc, m, err
}

const inviteHelp = `usage: claudemesh invite [--mesh MESH] [--uses N] [--expires DURATION]
       claudemesh invite revoke CODE [--mesh MESH]

Prints an invite code to your mesh, with which other machines join it
(claudemesh join); any member may invite. 'invite revoke' cancels a code:
it admits no one any more.
`

const inviteRevokeHelp = `usage: claudemesh invite revoke CODE [--mesh MESH]

Cancels an invite code to your mesh: it admits no one any more.
`

// maxInviteUses is the most uses an invite code may have, as the
// broker's InviteCreate frame allows.
const maxInviteUses = 1000

// runInvite: claudemesh invite [--uses N] [--expires D], and
// claudemesh invite revoke CODE.
func runInvite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	revoke := len(args) > 0 && args[0] == "revoke"
	c := newCmdLine("invite", inviteHelp, stdout)
	if revoke {
		args = args[1:]
		c = newCmdLine("invite revoke", inviteRevokeHelp, stdout)
	}
	mesh := c.String("mesh", "", "the `MESH` (default: $CLAUDEMESH_MESH, or the only mesh this machine joined)")
	var uses int
	var expires time.Duration
	var code string
	if revoke {
		pos, err := c.parse(args, "CODE")
		if err != nil {
			return err
		}
		code = pos[0]
		if _, err := wire.ParseInviteCode(code); err != nil {
			return usageErrorf(c.Name(), "%v", err)
		}
	} else {
		numberVar(c.FlagSet, &uses, "uses", 1, 1, maxInviteUses, "", "how many machines may join with the code")
		durationVar(c.FlagSet, &expires, "expires", day, time.Minute, broker.MaxInviteLifetime, "how long the code is valid")
		if _, err := c.parse(args); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	mc, m, err := memberConn(ctx, *mesh)
	if err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	defer mc.Close()
	if revoke {
		if err := mc.RevokeInvite(ctx, code); err != nil {
			return fmt.Errorf("invite revoke: %w", err)
		}
		fmt.Fprintln(stdout, "revoked; the code admits no one any more")
		return nil
	}
	inv, err := mc.Invite(ctx, uses, time.Now().Add(expires))
	if err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	fmt.Fprintln(stdout, inv.Code)
	fmt.Fprintf(stderr, "invite to mesh %s: %d use(s), valid until %s. On the other machine run:\n  claudemesh join %s %s\n",
		inv.Mesh, inv.Uses, inv.ExpiresAt.Local().Format(time.RFC3339), m.Broker, inv.Code)
	return nil
}

const joinHelp = `usage: claudemesh join BROKER_URL CODE [--name MEMBER_NAME]

Enrolls this machine in the mesh of an invite code (from claudemesh invite):
makes this machine's member key for the mesh and registers its public half
with the broker at BROKER_URL (wss://HOST:PORT/v1/ws). Sessions started with
CLAUDEMESH_MESH set to the mesh then use it.
`

// runJoin: claudemesh join BROKER_URL CODE [--name NAME].
func runJoin(ctx context.Context, args []string, stdout io.Writer) error {
	c := newCmdLine("join", joinHelp, stdout)
	name := c.String("name", "", "your member `NAME` in the mesh (default user@host)")
	pos, err := c.parse(args, "BROKER_URL", "CODE")
	if err != nil {
		return err
	}
	url, code := pos[0], pos[1]
	if _, err := wire.ParseInviteCode(code); err != nil {
		return usageErrorf(c.Name(), "%v", err)
	}
	if *name, err = memberName(c, *name); err != nil {
		return err
	}
	home, err := config.Home(os.Getenv)
	if err != nil {
		return err
	}
	key, err := identity.NewMemberKey()
	if err != nil {
		return err
	}
	d := client.MemberDial{URL: url, Key: key, Name: *name}
	if err := secureDial(&d); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	joined, err := client.Join(ctx, d, code)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if err := identity.SaveMembership(home, identity.Membership{Mesh: joined.Mesh, Broker: url, Name: *name, Role: wire.RoleMember, Key: key, CreatedAt: time.Now()}, false); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "joined mesh %s as %s (member key %s). Sessions started with CLAUDEMESH_MESH=%s now use it.\n", joined.Mesh, *name, joined.KeyID, joined.Mesh)
	return nil
}

const memberHelp = `usage: claudemesh member list [--mesh MESH]
       claudemesh member remove NAME [--mesh MESH]

Lists the members of your mesh, or (its owner) removes one, named by its
name or key id: its sessions are closed at once and it cannot connect again.
`

// runMember: claudemesh member list | remove NAME.
func runMember(ctx context.Context, args []string, stdout io.Writer) error {
	sub, args, err := subcommand("member", args, "list", "remove")
	if err != nil {
		return err
	}
	c := newCmdLine(strings.TrimSpace("member "+sub), memberHelp, stdout)
	mesh := c.String("mesh", "", "the `MESH` (default: $CLAUDEMESH_MESH, or the only mesh this machine joined)")
	names := []string{}
	if sub == "remove" {
		names = append(names, "NAME")
	}
	pos, err := c.parse(args, names...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	mc, _, err := memberConn(ctx, *mesh)
	if err != nil {
		return fmt.Errorf("member %s: %w", sub, err)
	}
	defer mc.Close()
	if sub == "remove" {
		if err := mc.Remove(ctx, pos[0]); err != nil {
			return fmt.Errorf("member remove: %w", err)
		}
		fmt.Fprintf(stdout, "removed %s: its sessions are closed and it cannot connect again\n", pos[0])
		return nil
	}
	list, err := mc.Members(ctx)
	if err != nil {
		return fmt.Errorf("member list: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tKEY\tSESSIONS\tJOINED")
	for _, m := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", m.Name, m.Role, m.KeyID, m.Sessions, m.JoinedAt.Local().Format(time.RFC3339))
	}
	return tw.Flush()
}
