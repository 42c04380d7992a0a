"""Container images of WordPress sites: podman on this machine (`podman`), the build context and tags
(`images`)."""
