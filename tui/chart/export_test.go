package chart

// Stack is stack, for the tests.
var Stack = stack
