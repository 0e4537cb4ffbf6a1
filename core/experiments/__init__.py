"""Groups of runs that answer 'what would fix it': remedies, their effects, learning curves, tuning."""
