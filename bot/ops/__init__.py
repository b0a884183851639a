"""Operations: scheduled jobs, reports, health, logging."""
