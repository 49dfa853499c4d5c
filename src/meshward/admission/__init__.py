"""admission/: policies every change must pass before up or apply accept it."""
