"""Project-wide middleware."""


def private_pages_middleware(get_response):
    """Pages answered to a logged-in user are theirs alone: no browser or shared cache keeps them.

    Views that set Cache-Control themselves (the admin's never_cache, the phone API's feed) keep
    theirs; every other answer to an authenticated request gets ``private, no-store``.
    """

    def middleware(request):
        response = get_response(request)
        # The phone API's request.user is a Device (or None), which is not a logged-in person.
        user = getattr(request, "user", None)
        if getattr(user, "is_authenticated", False) is True and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "private, no-store"
        return response

    return middleware
