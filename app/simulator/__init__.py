"""A built-in stand-in for Twitch.

It builds EventSub messages from the sample bodies in ``samples/``, signs
them as Twitch does, and POSTs them to a webhook URL: a few at a time from
the ``trigger`` command, or as a steady stream from ``Simulator`` and the
``simulate`` command.
"""
