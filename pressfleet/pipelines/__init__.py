"""Site-code pipelines: CI files generated for GitHub Actions, GitLab CI and Jenkins (`generate`, pure), and
what their steps run (`loadtest`: a short load test and its comparison with the previous release)."""
