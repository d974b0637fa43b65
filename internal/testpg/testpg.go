// Package testpg gives tests a PostgreSQL database of their own, for tests
// only. CLAUDEMESH_TEST_POSTGRES holds the URL of a server the tests may
// create databases on (e.g. postgres://postgres@127.0.0.1:5432/test); without
// it the tests that need PostgreSQL skip, unless CI=true, where they fail.
//
// Each test binary creates one database with a random name the first time a
// test asks (dropped when the binary ends, see Run), and each test a schema
// of its own in it, dropped when the test ends, so that runs and tests
// never see each other's rows.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the variable holding the server's URL.
const Env = "CLAUDEMESH_TEST_POSTGRES"

var (
	once   sync.Once
	dbURL  string // the test binary's own database
	dbName string
	dbErr  error
)

// Run runs the tests of m and then drops the database they used. Call it
// from TestMain: os.Exit(testpg.Run(m)).
func Run(m *testing.M) int {
	code := m.Run()
	if dbName != "" {
		if err := admin(func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{dbName}.Sanitize()+` WITH (FORCE)`)
			return err
		}); err != nil {
			fmt.Fprintf(os.Stderr, "testpg: drop database %s: %v\n", dbName, err)
		}
	}
	return code
}

// admin runs f on a connection to the server's URL.
func admin(f func(context.Context, *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, os.Getenv(Env))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return f(ctx, c)
}

func random(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// URL returns the URL of a fresh, empty schema for t (its search_path), in
// the test binary's database. It skips t when no server is configured,
// except under CI=true.
func URL(t testing.TB) string {
	t.Helper()
	if os.Getenv(Env) == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI needs PostgreSQL for this test", Env)
		}
		t.Skipf("no PostgreSQL: set %s (scripts/test does) to run this test", Env)
	}
	once.Do(func() {
		name := random("claudemesh_test_")
		dbErr = admin(func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize())
			return err
		})
		if dbErr == nil {
			dbName = name
			u, err := url.Parse(os.Getenv(Env))
			if err != nil {
				dbErr = err
				return
			}
			u.Path = "/" + name
			dbURL = u.String()
		}
	})
	if dbErr != nil {
		t.Fatalf("create a test database on %s: %v", os.Getenv(Env), dbErr)
	}
	schema := random("t_")
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, _ := url.Parse(dbURL)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
