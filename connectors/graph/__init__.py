"""Microsoft 365 through Microsoft Graph: mail, contacts and the directory of one tenant, app-only with msal."""
