// Package packaging builds what an administrator installs: static
// binaries for every platform, the .deb and .rpm packages of the agent
// and the gateway (with nfpm, pinned in tools/go.mod), the Windows zips,
// the macOS tarball and SHA256SUMS over them. Build is what
// "make package VERSION=x.y.z" runs, through cmd/oxpackage.
//
// The files it packages live beside it: linux/ (systemd units, nfpm
// configs, maintainer scripts), config/ (the commented example configs),
// windows/install.ps1. docker/ and helm/ hold the container images and the
// Kubernetes chart of the gateway, which Build does not touch.
// README.md says what each artifact holds and why.
//
// The tests check the artifacts in dist/ when they are there (CI builds
// them first; see README.md), and skip those checks otherwise.
package packaging
