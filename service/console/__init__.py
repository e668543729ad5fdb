"""The analyst console (DESIGN §11): server-rendered pages over the same service, auth and store."""
