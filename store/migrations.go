package store

import (
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// Migration is one of a store implementation's embedded schema changes.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the SQL migrations in dir of fsys that a database at
// schema version current has not applied yet, in order. Their names must
// start with their version, in sequence from 1 ("0001_init.sql",
// "0002_….sql", …); a current version newer than the last one is an error.
func Migrations(fsys fs.FS, dir string, current int) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	for i, e := range entries {
		prefix, _, _ := strings.Cut(e.Name(), "_")
		if v, err := strconv.Atoi(prefix); err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: not numbered in sequence", e.Name())
		}
	}
	if current > len(entries) {
		return nil, fmt.Errorf("database schema version %d is newer than this program supports (%d)", current, len(entries))
	}
	var out []Migration
	for i := current; i < len(entries); i++ {
		name := entries[i].Name()
		body, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: i + 1, Name: name, SQL: string(body)})
	}
	return out, nil
}

// InRequestOrder returns the status of each of ids, in order (repeats
// included), from found: StateUnknown, with only the id, for one not found.
func InRequestOrder(ids []string, found map[string]MessageStatus) []MessageStatus {
	out := make([]MessageStatus, len(ids))
	for i, id := range ids {
		st, ok := found[id]
		if !ok {
			st = MessageStatus{ID: id, State: StateUnknown}
		}
		out[i] = st
	}
	return out
}
