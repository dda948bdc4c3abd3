"""Pure rules: samples and time in, verdicts, actions and budget decisions out."""
