"""Pagination: cursors for a customer's growing lists, page numbers for staff lists."""

from rest_framework.pagination import CursorPagination, PageNumberPagination


class NewestFirstCursorPagination(CursorPagination):
    """Stable under inserts (new ledger rows never shift a page): ``?cursor=...&page_size=N``."""

    ordering = ("-created_at", "-id")
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class StaffPagination(PageNumberPagination):
    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 200
