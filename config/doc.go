// Package config holds the YAML configuration of the agent (oxbroker) and
// the gateway (oxbroker-gateway): the schema, loading, and validation. The
// keys are those of docs/design.md. Only this package and cmd touch viper.
//
// LoadAgent and LoadGateway (and ParseAgent and ParseGateway, for YAML
// already read) go through these steps:
//
//  1. Read the YAML with viper. Keys are case-insensitive.
//  2. Apply environment overrides to leaf keys: OXBROKER_<PATH> for the
//     agent and OXGATEWAY_<PATH> for the gateway, PATH being the key path
//     upper-cased with "." and list indexes turned into "_"
//     (OXBROKER_GATEWAY_ADDRESS, OXBROKER_SITES_0_AUTH_TOKEN,
//     OXGATEWAY_LISTEN_API). Only keys of the schema are overridden, and
//     under a list only the items the file has; other variables, such as
//     an OXBROKER_TOKEN kept for ${...}, are ignored. A list of strings
//     (gateway.addresses, allow.scopes) takes a comma-separated value. An
//     override set to the empty string sets the key to "" (which turns
//     admin.listen off). Override values are not ${}-expanded.
//  3. Expand ${NAME} in every other string value, list items included,
//     from the environment; a missing variable is an error. "$${" stands
//     for a literal "${"; any other "$" (a lone "$", "$$") is kept as is.
//  4. Refuse unknown keys, and decode: durations as "60s", sizes as a
//     number of bytes or "50MiB", "512KiB", "10MB" (KiB, MiB, GiB are
//     powers of 1024; KB, MB, GB powers of 1000), dates as 2027-11-28.
//  5. Read token_file into the token, surrounding white space trimmed. A
//     relative token_file is read relative to the working directory of
//     the process, not to the config file.
//  6. Fill in defaults for keys the file leaves out (null counts as left
//     out); a key set to "" or 0 keeps that value.
//  7. Validate.
//
// Every problem is reported at once, as Errors: one "key.path: message"
// line each ("sites[1].auth.email: required for auth type basic"), sorted
// by the order of the keys in the documented example config, which is the
// order of most files. Only a YAML syntax error stops loading early.
//
// Tokens are Secret values, which print as REDACTED. No error message
// quotes a configured value, since it might be a token typed into the
// wrong key; messages name keys, files and environment variables.
package config
