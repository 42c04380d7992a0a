"""Kubernetes: a site's Kustomize overlay rendered from its block (`render`, pure), and the rendered
manifests built and checked (`check`: kubectl kustomize, the Kubernetes JSON schemas, pressfleet's rules)."""
