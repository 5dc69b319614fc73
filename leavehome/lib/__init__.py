"""Small helpers every app uses, one module per job: base64url, sealing, conditional GET, composed SQL."""
