// Package config reads gateway.toml strictly: unknown keys, wrong types,
// missing required fields and dangling references are errors naming the
// file, line and key. Load fills in every documented default.
package config
