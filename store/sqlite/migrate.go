package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"log/slog"

	"github.com/claudemesh/claudemesh/store"
)

// migrations holds the schema changes, applied in the order of their
// numbered file names (0001_init.sql, ...). A released file is never edited:
// a change is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrate applies, in one transaction, the migrations the database has not
// seen. It refuses a database whose schema is newer than this package knows.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	pending, err := store.Migrations(migrations, "migrations", current)
	if err != nil {
		return err
	}
	for _, m := range pending {
		_, err := tx.ExecContext(ctx, m.SQL)
		if err == nil {
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, m.Version)
		}
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		log.Info("store schema migrated", "version", m.Version)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
