//go:build tools

// Package tools pins the containerd daemon, its runc shim and ctr that scripts/testenv.sh builds
// for the real node.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
