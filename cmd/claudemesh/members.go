package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/mcp"
	"github.com/claudemesh/claudemesh/wire"
)

// memberTimeout bounds one membership command.
const memberTimeout = 30 * time.Second

// secureDial sets how to reach a broker: CLAUDEMESH_CA and
// CLAUDEMESH_ALLOW_PLAINTEXT, as the MCP server reads them.
func secureDial(d *broker.MemberDial) (err error) {
	d.RootCAs, d.AllowPlaintext, err = mcp.TransportFromEnv(os.Getenv)
	return err
}

// defaultMemberName is user@host, in the characters a member name allows.
func defaultMemberName() string {
	who := os.Getenv("USER")
	if u, err := user.Current(); who == "" && err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	keep := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r) {
				return r
			}
			return -1
		}, s)
	}
	name := keep(who) + "@" + keep(host)
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// runMesh: claudemesh mesh create NAME — run where the broker runs (it
// needs the broker's operator credential from CLAUDEMESH_HOME).
func runMesh(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: claudemesh mesh create NAME [--name MEMBER_NAME] [--broker URL]")
	}
	fs := flag.NewFlagSet("mesh create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", defaultMemberName(), "your member name in the mesh")
	brokerURL := fs.String("broker", "", "the broker's URL (default: the broker running under CLAUDEMESH_HOME)")
	mesh, err := parseWithArg(fs, args[1:], "mesh name")
	if err != nil {
		return err
	}
	if err := identity.ValidateMesh(mesh); err != nil {
		return err
	}
	if err := wire.ValidMemberName(*name); err != nil {
		return err
	}
	home, err := mcp.HomeFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	ep, err := broker.LocalEndpoint(home, *brokerURL)()
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
	d := broker.MemberDial{URL: ep.URL, Token: ep.Token, Mesh: mesh, Key: key, Name: *name}
	if err := secureDial(&d); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	mc, err := broker.DialMember(ctx, d)
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

// parseWithArg parses flags and one positional argument, in either order.
func parseWithArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("%s: want one %s, got %d arguments", fs.Name(), what, len(pos))
	}
	return pos[0], nil
}

// parseArgs parses flags wherever they stand and returns the positional
// arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// memberConn opens a member connection for a mesh this machine belongs
// to: --mesh, else CLAUDEMESH_MESH, else the only mesh joined.
func memberConn(ctx context.Context, mesh string) (*broker.MemberConn, identity.Membership, error) {
	home, err := mcp.HomeFromEnv(os.Getenv)
	if err != nil {
		return nil, identity.Membership{}, err
	}
	if mesh == "" {
		mesh = os.Getenv(mcp.EnvMesh)
	}
	if mesh == "" {
		all, err := identity.Memberships(home)
		if err != nil {
			return nil, identity.Membership{}, err
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
	d := broker.MemberDial{URL: m.Broker, Mesh: m.Mesh, Key: m.Key, Name: m.Name}
	if err := secureDial(&d); err != nil {
		return nil, m, err
	}
	mc, err := broker.DialMember(ctx, d)
	return mc, m, err
}

// runInvite: claudemesh invite [--uses N] [--expires D], and
// claudemesh invite revoke CODE.
func runInvite(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	revoke := len(args) > 0 && args[0] == "revoke"
	if revoke {
		args = args[1:]
	}
	fs := flag.NewFlagSet("invite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mesh := fs.String("mesh", "", "the mesh (default: $CLAUDEMESH_MESH, or the only mesh this machine joined)")
	uses := fs.Int("uses", 1, "how many machines may join with the code")
	expires := fs.Duration("expires", 24*time.Hour, "how long the code is valid (at most 720h)")
	var code string
	var err error
	if revoke {
		code, err = parseWithArg(fs, args, "invite code")
	} else {
		err = fs.Parse(args)
		if err == nil && fs.NArg() > 0 {
			err = fmt.Errorf("invite: unexpected argument %q", fs.Arg(0))
		}
	}
	if err != nil {
		return err
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
	inv, err := mc.Invite(ctx, *uses, time.Now().Add(*expires))
	if err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	fmt.Fprintln(stdout, inv.Code)
	fmt.Fprintf(stderr, "invite to mesh %s: %d use(s), valid until %s. On the other machine run:\n  claudemesh join %s %s\n",
		inv.Mesh, inv.Uses, inv.ExpiresAt.Local().Format(time.RFC3339), m.Broker, inv.Code)
	return nil
}

// runJoin: claudemesh join BROKER_URL CODE [--name NAME].
func runJoin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", defaultMemberName(), "your member name in the mesh")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errors.New("usage: claudemesh join BROKER_URL CODE [--name MEMBER_NAME]")
	}
	url, code := pos[0], pos[1]
	if _, err := wire.ParseInviteCode(code); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if err := wire.ValidMemberName(*name); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	home, err := mcp.HomeFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	key, err := identity.NewMemberKey()
	if err != nil {
		return err
	}
	d := broker.MemberDial{URL: url, Key: key, Name: *name}
	if err := secureDial(&d); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, memberTimeout)
	defer cancel()
	joined, err := broker.Join(ctx, d, code)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if err := identity.SaveMembership(home, identity.Membership{Mesh: joined.Mesh, Broker: url, Name: *name, Role: wire.RoleMember, Key: key, CreatedAt: time.Now()}, false); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "joined mesh %s as %s (member key %s). Sessions started with CLAUDEMESH_MESH=%s now use it.\n", joined.Mesh, *name, joined.KeyID, joined.Mesh)
	return nil
}

// runMember: claudemesh member list | remove NAME.
func runMember(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "remove") {
		return errors.New("usage: claudemesh member list | remove NAME [--mesh M]")
	}
	sub := args[0]
	fs := flag.NewFlagSet("member "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	mesh := fs.String("mesh", "", "the mesh (default: $CLAUDEMESH_MESH, or the only mesh this machine joined)")
	var target string
	var err error
	if sub == "remove" {
		target, err = parseWithArg(fs, args[1:], "member name or key id")
	} else {
		err = fs.Parse(args[1:])
	}
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
		if err := mc.Remove(ctx, target); err != nil {
			return fmt.Errorf("member remove: %w", err)
		}
		fmt.Fprintf(stdout, "removed %s: its sessions are closed and it cannot connect again\n", target)
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
