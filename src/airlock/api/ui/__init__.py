"""The web dashboard at ``/ui``: server-rendered pages over the control plane's services, one small
script for live updates and actions (which call the JSON API's own routes), one stylesheet.

``session.py`` signs operators in (an encrypted, HttpOnly, SameSite=Strict cookie holding their API
token) and checks CSRF; ``security.py`` puts the CSP and the other headers on every ``/ui`` answer;
``views.py`` reads what the pages show; ``charts.py`` draws the throughput chart as SVG;
``routes.py`` is the one router.
"""
