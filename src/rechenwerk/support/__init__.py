"""Support requests (issue 19): users and PIs ask the centre's operators for help with a
project (onboarding, porting and scaling, data, other); operators assign, answer and
close them. Rules in ``service.py``, tables in ``models.py``, REST API in ``router.py``,
the report in ``report.py``; the portal pages are ``web/pages/support.py``."""
