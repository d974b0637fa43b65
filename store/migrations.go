package store

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// Migrations returns the names of the SQL migrations in dir of fsys, a
// store implementation's embedded schema changes: element i is version
// i+1. Their names must start with their version, in sequence from 1
// ("0001_init.sql", "0002_….sql", …).
func Migrations(fsys fs.FS, dir string) ([]string, error) {
	entries, err := fs.ReadDir(fsys, dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var all []string
	for _, e := range entries {
		prefix, _, _ := strings.Cut(e.Name(), "_")
		if v, err := strconv.Atoi(prefix); err != nil || v != len(all)+1 {
			return nil, fmt.Errorf("migration %s: not numbered in sequence", e.Name())
		}
		all = append(all, e.Name())
	}
	return all, nil
}
