package oci

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/m3ta/pi-agent/rootfs"
	"github.com/m3ta/pi-agent/sandbox"
)

// WriteBundle writes the OCI bundle the runner would run for p into dir (a
// new directory): config.json, the populated rootfs, and the idmapped
// project mount at dir/project, so that stock runc or crun can run the very
// same sandbox (`runc run --bundle dir ID`). The project mount stays until
// the caller unmounts it.
func WriteBundle(p *sandbox.Plan, dir string) (retErr error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create bundle dir: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = sandbox.RemoveRunDir(dir)
		}
	}()
	o := Options{Rootfs: filepath.Join(dir, "rootfs"), ProjectSource: filepath.Join(dir, "project")}
	spec, err := Spec(p, o)
	if err != nil {
		return err
	}
	spec.Root.Path = "rootfs"
	// Every field the spec uses exists since runtime-spec 1.0; older
	// runtimes (crun 1.8) refuse a newer version string they do not know.
	spec.Version = "1.0.2"
	if err := os.Mkdir(o.Rootfs, 0o755); err != nil {
		return err
	}
	if err := rootfs.Populate(o.Rootfs, Layout(p, o).Files()); err != nil {
		return err
	}
	if err := os.Mkdir(o.ProjectSource, 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(data, '\n'), 0o600); err != nil {
		return err
	}
	return sandbox.MountProject(p, o.ProjectSource)
}
