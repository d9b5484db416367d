"""The jobs the service schedules and the commands share: coverage upkeep and departures."""
