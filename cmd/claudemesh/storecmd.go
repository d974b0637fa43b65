package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/store/postgres"
	"github.com/claudemesh/claudemesh/store/sqlite"
)

const storeCopyHelp = `usage: claudemesh store copy --to URL [--data DIR]

Copies everything an embedded broker keeps in its data directory — meshes,
members, invites, sessions, and every DM still queued, read or expired with
its status — into an empty PostgreSQL database, together with the broker's
credential, so that brokers started with --store URL carry on where it left
off: queued DMs are delivered, senders see their status, local sessions are
let in. The broker must be stopped first: the copy refuses to run while a
broker runs on the data directory, and holds it so that none starts
meanwhile. The SQLite files are left as they are.
`

// isPostgresURL reports whether u names a PostgreSQL database.
func isPostgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

func runStore(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "backup" {
		return runStoreBackup(ctx, args[1:], stdout)
	}
	if len(args) == 0 || args[0] != "copy" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, storeCopyHelp+"\n"+storeBackupHelp)
			return nil
		}
		return usageErrorf("store", "want a subcommand: copy or backup")
	}
	c := newCmdLine("store copy", storeCopyHelp, stdout)
	to := c.String("to", "", "the PostgreSQL database `URL` to copy into (postgres://USER@HOST:PORT/DB?...)")
	data := c.String("data", "", "the broker's data `DIR` (default $CLAUDEMESH_HOME/broker)")
	if _, err := c.parse(args[1:]); err != nil {
		return err
	}
	if !isPostgresURL(*to) {
		return usageErrorf(c.Name(), "--to wants a postgres:// or postgresql:// URL")
	}
	home, err := config.Home(os.Getenv)
	if err != nil {
		return err
	}
	if *data == "" {
		*data = filepath.Join(home, "broker")
	}
	db := filepath.Join(*data, sqliteFile)
	if _, err := os.Stat(db); err != nil {
		return fmt.Errorf("store copy: no broker database in %s: %w", *data, err)
	}
	lock, err := broker.LockLocal(home, *data, broker.Holder{PID: os.Getpid(), URL: "(copying the store)", StartedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("store copy: stop the broker first: %w", err)
	}
	defer lock.Close()

	src, err := sqlite.Open(ctx, db, sqlite.Config{})
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	defer src.Close()
	d, err := src.Dump(ctx)
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	if d.Token, err = broker.ReadToken(*data); err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	dst, err := postgres.Open(ctx, *to, postgres.Config{})
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	defer dst.Close()
	if err := dst.Load(ctx, d); err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	waiting := 0
	for _, m := range d.Messages {
		if !m.Acked && m.Box != nil {
			waiting++
		}
	}
	fmt.Fprintf(stdout, "copied %d meshes, %d members, %d invites, %d sessions and %d DMs (%d waiting) to %s\n",
		len(d.Meshes), len(d.Members), len(d.Invites), len(d.Sessions), len(d.Messages), waiting, postgres.Redact(*to))
	fmt.Fprintf(stdout, "start the brokers with: claudemesh broker --store %s\n", postgres.Redact(*to))
	return nil
}
