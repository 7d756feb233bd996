"""The EventSub callback: Twitch's signed webhooks arrive here.

This package verifies and answers deliveries and hands notifications to
storage; it never renders pages.
"""
