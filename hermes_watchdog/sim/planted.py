"""The fake credentials the simulated gateway leaks into its logs, environment and files, so the redactor's
work can be checked: every shape it knows, none of them real."""

# Fake credentials in every shape the redactor knows. None of them is real.
PLANTED_SECRETS = (
    "simQQclientSecret9f8e7d6c",  # QQ_CLIENT_SECRET value
    "simAccessTokenQ1w2e3r4t5y6",  # QQ access token (Authorization: QQBot ...)
    "sk-simOpenAIkey0123456789abcdefXYZ",  # OpenAI-style API key
    "123456789:AAHsimTelegramBotTokenValue0123456789",  # Telegram bot token
    "xoxb-1234567890-simslacktoken",  # Slack bot token
    "ghp_simGithubToken0123456789abcdefABCD",  # GitHub token
    "AIzaSimGoogleKey0123456789abcdefghijklmno",  # Google API key
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzaW0ifQ.c2ltLWp3dC1zaWduYXR1cmU",  # JWT
    "simDbPassw0rdValue",  # DB_PASSWORD value
    "simWebhookSigningKey42",  # WEBHOOK_SIGNING_KEY value
)
(QQ_SECRET, QQ_TOKEN, OPENAI_KEY, TELEGRAM, SLACK, GITHUB, GOOGLE, JWT, DB_PASSWORD, SIGNING_KEY) = PLANTED_SECRETS
