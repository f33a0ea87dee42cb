"""Experiments: a sweep's grid of variants (`grid`), the leaderboard of model versions
(`leaderboard`: rows, ranking, text formats) and its HTML page with a quality-vs-cost
scatter (`leaderboard_html`)."""
