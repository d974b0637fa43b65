package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/store/sqlite"
)

const storeBackupHelp = `usage: claudemesh store backup --to DIR [--data DIR]

Backs up an embedded broker's data directory into DIR, a new (or empty)
directory, while the broker runs or not: the database as one consistent
snapshot of what was committed (SQLite's VACUUM INTO, which does not stop
the broker's writes), and the broker's credential. DIR is a data directory
of its own: 'claudemesh broker --data DIR' runs on it, with every DM that
was queued at the time of the backup. To restore, stop the broker and put
DIR's files in place of its data directory's (or start it with --data DIR).
`

func runStoreBackup(ctx context.Context, args []string, stdout io.Writer) error {
	c := newCmdLine("store backup", storeBackupHelp, stdout)
	to := c.String("to", "", "the new or empty `DIR` to write the backup into")
	data := c.String("data", "", "the broker's data `DIR` (default $CLAUDEMESH_HOME/broker)")
	if _, err := c.parse(args); err != nil {
		return err
	}
	if *to == "" {
		return usageErrorf(c.Name(), "--to is required")
	}
	if *data == "" {
		home, err := config.Home(os.Getenv)
		if err != nil {
			return err
		}
		*data = filepath.Join(home, "broker")
	}
	db := filepath.Join(*data, sqliteFile)
	if _, err := os.Stat(db); err != nil {
		return fmt.Errorf("store backup: no broker database in %s: %w", *data, err)
	}
	if err := emptyDir(*to); err != nil {
		return fmt.Errorf("store backup: %w", err)
	}
	if err := sqlite.Backup(ctx, db, filepath.Join(*to, sqliteFile)); err != nil {
		return fmt.Errorf("store backup: %w", err)
	}
	if err := broker.CopyCredential(*data, *to); err != nil {
		return fmt.Errorf("store backup: %w", err)
	}
	fmt.Fprintf(stdout, "backed up %s to %s\n", *data, *to)
	fmt.Fprintf(stdout, "restore: stop the broker, then run it with --data %s (or copy its files into %s)\n", *to, *data)
	return nil
}

// emptyDir makes dir (mode 0700) or checks that it is an empty directory.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, 0o700)
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty: back up into a new directory", dir)
	}
	return nil
}
