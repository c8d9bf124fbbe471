"""Bridges from other libraries' extension points to aksrun (joblib's parallel backends).

Each bridge imports its library only once the user's code has imported it, so `import aksrun`
costs nothing for users who never touch that library.
"""
